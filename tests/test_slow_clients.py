"""Slow clients: half-sent requests must not starve the service.

gunicorn runs with the service's own config (penguinsite/gunicorn.conf.py), with its default
worker (each request read whole before it is served) and with its threaded worker, and, in
the last test, behind a real nginx with the committed proxy config
(deploy/nginx/penguin.conf.template), exactly as docker-compose runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.data import ADELIE
from tests.support.http import http
from tests.support.processes import REPO, held_port, need_tool, stop_process, wait_for
from tests.support.service import gunicorn

# Twice as many stalled clients as the threaded server has threads (2 workers × 2 threads).
WORKERS, THREADS, STALLED = 2, 2, 8
# The default worker, and the threaded one.
WORKER_CLASSES = pytest.mark.parametrize(
    "worker_class", ["penguinsite.gunicorn_worker.BufferingWorker", "penguinsite.gunicorn_worker.ThreadWorker"]
)
HALF_SENT = [
    # headers never finished
    b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
    # headers sent, body announced and never sent in full
    b"POST /classify/knn HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b'Content-Length: 200\r\n\r\n{"island": 1',
]


@contextlib.contextmanager
def stalled_clients(url: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that each send part of a request, then stay silent."""
    host, port = url.removeprefix("http://").split(":")
    sockets = []
    try:
        for index in range(count):
            conn = socket.create_connection((host, int(port)), timeout=5)
            conn.sendall(HALF_SENT[index % len(HALF_SENT)])
            sockets.append(conn)
        yield sockets
    finally:
        for conn in sockets:
            conn.close()


@WORKER_CLASSES
def test_half_sent_requests_do_not_stop_healthz_from_answering(live_stack, worker_class):
    env = {**live_stack.env, "GUNICORN_WORKER_CLASS": worker_class, "GUNICORN_REQUEST_READ_TIMEOUT": "2"}
    with gunicorn(env, workers=WORKERS, threads=THREADS) as server:
        with stalled_clients(server.url, STALLED) as stalled:
            for _ in range(3):
                answer = http("GET", f"{server.url}/healthz", timeout=30)
                assert answer.status == 200, answer.error
            classify = http("POST", f"{server.url}/classify/knn", ADELIE, timeout=30)
            assert classify.status == 200, (classify.status, classify.body[:300])
            # A stalled client is let go: its connection is closed (a body cut short gets a 400 first).
            stalled[1].settimeout(30)
            answer = b""
            while chunk := stalled[1].recv(65536):
                answer += chunk
            assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
        # Each client let go is one warning line naming the timeout, not an error with a traceback.
        wait_for(lambda: _timed_out_lines(server.log), timeout=10, what="the timed-out clients' log lines")
        lines = _timed_out_lines(server.log)
        assert {line["level"] for line in lines} == {"WARNING"} and "exc" not in lines[0]
        assert "for 2 s" in lines[0]["message"]
        assert "Socket error processing request" not in server.log.read_text()


def _timed_out_lines(log: Path) -> list[dict]:
    text = log.read_text()
    # The server may be writing its last line as it is read: only whole lines count.
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
    entries = (json.loads(line) for line in lines if line.startswith("{"))
    return [entry for entry in entries if "sent no request, or read no answer" in entry.get("message", "")]


@WORKER_CLASSES
def test_clients_let_go_after_stalling_do_not_hold_up_the_worker(live_stack, worker_class):
    """Closing a stalled client's connection waits up to 2 s for the client to close too;
    that wait must not stop the worker answering everyone else meanwhile."""
    env = {**live_stack.env, "GUNICORN_WORKER_CLASS": worker_class, "GUNICORN_REQUEST_READ_TIMEOUT": "1"}
    stalled_count = 6  # each holds one of the 2 threads for 1 s: about 3 s in all
    with gunicorn(env, workers=1, threads=2) as server:
        with stalled_clients(server.url, stalled_count) as stalled:
            waits = []
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                sent = time.monotonic()
                answer = http("GET", f"{server.url}/healthz", timeout=30)
                assert answer.status == 200, answer.error
                waits.append(time.monotonic() - sent)
                time.sleep(0.2)
            # Every stalled client has been let go: its connection ends (a 400 first for a cut body).
            for conn in stalled:
                conn.settimeout(10)
                answer = b""
                while chunk := conn.recv(65536):
                    answer += chunk
                assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    # The threads' 3 s with the stalled requests, not 2 s more for each connection closed.
    assert max(waits) < 5, [round(wait, 1) for wait in waits]


@contextlib.contextmanager
def nginx_proxy(upstream: str) -> Iterator[str]:
    """nginx with the committed proxy config in front of ``upstream`` (host:port); yields its URL."""
    binary = need_tool(shutil.which("nginx") or next(iter(_sbin("nginx")), None), "nginx")
    with held_port() as port:
        yield from _nginx(binary, port, upstream)


def _nginx(binary: str, port: int, upstream: str) -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="penguin-nginx-"))
    template = (REPO / "deploy" / "nginx" / "penguin.conf.template").read_text()
    site = template.replace("${PENGUIN_UPSTREAM}", upstream).replace("${PENGUIN_PROXY_LISTEN}", f"127.0.0.1:{port}")
    (folder / "site.conf").write_text(site)
    temp_paths = "\n".join(
        f"  {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{\n  access_log off;\n{temp_paths}\n  include {folder / 'site.conf'};\n}}\n"
    )
    process = subprocess.Popen(
        [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"nginx exited: {process.stderr.read().decode(errors='replace')}")
            return http("GET", f"{url}/healthz", timeout=1).status == 200

        wait_for(answers, timeout=30, what="nginx to answer /healthz")
        yield url
    finally:
        stop_process(process)
        shutil.rmtree(folder, ignore_errors=True)


def _sbin(name: str) -> list[str]:
    return [path for path in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.path.exists(path)]


def test_behind_the_proxy_half_sent_requests_never_reach_even_a_single_threaded_gunicorn(live_stack):
    """The compose topology: nginx buffers each request, so one sync worker is enough to stay up."""
    env = {**live_stack.env, "GUNICORN_WORKER_CLASS": "sync"}
    with gunicorn(env, workers=1, threads=1) as server:
        with nginx_proxy(server.url.removeprefix("http://")) as proxy:
            with stalled_clients(proxy, STALLED):
                for _ in range(3):
                    answer = http("GET", f"{proxy}/healthz", timeout=30)
                    assert answer.status == 200, answer.error
            classify = http("POST", f"{proxy}/classify/knn", ADELIE, timeout=30)
            assert classify.status == 200, (classify.status, classify.body[:300])
