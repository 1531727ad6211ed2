"""Kept-alive connections under the service's threaded gunicorn worker (penguinsite/gunicorn.conf.py
with GUNICORN_WORKER_CLASS=penguinsite.gunicorn_worker.ThreadWorker).

A thread that has answered serves the same client's next request itself when it has already
arrived; these tests hold what clients see: every answer in order on the one connection,
other clients not held back by a busy one, and a client that stalls halfway through its next
request let go without holding the server.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

from tests.support.data import ADELIE, CHINSTRAP, GENTOO
from tests.support.http import http as request
from tests.support.service import gunicorn

THREADED = {"GUNICORN_WORKER_CLASS": "penguinsite.gunicorn_worker.ThreadWorker"}
SPECIES = [("Adelie", ADELIE), ("Chinstrap", CHINSTRAP), ("Gentoo", GENTOO)]
JSON = {"Content-Type": "application/json"}


def _classify(conn: http.client.HTTPConnection, penguin: dict) -> tuple[int, str, str | None]:
    conn.request("POST", "/classify/knn", json.dumps(penguin), JSON)
    response = conn.getresponse()
    body = response.read()
    return response.status, json.loads(body)["species_name"], response.getheader("Connection")


def _raw(penguin: dict) -> bytes:
    body = json.dumps(penguin).encode()
    return (
        b"POST /classify/knn HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


class _OneFile:
    """Lets http.client read several answers in a row from one buffered socket file (each
    answer's end would otherwise close it)."""

    def __init__(self, file) -> None:
        self.file = file

    def makefile(self, *args, **kwargs):
        return self

    def readline(self, *args):
        return self.file.readline(*args)

    def read(self, *args):
        return self.file.read(*args)

    def readinto(self, buffer):
        return self.file.readinto(buffer)

    def peek(self, *args):
        return self.file.peek(*args)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def server(live_stack):
    with gunicorn({**live_stack.env, **THREADED}, workers=1, threads=2) as live:
        yield live


def test_requests_on_one_connection_are_answered_in_order_back_to_back_and_after_pauses(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        sent = (SPECIES * 3)[:8]
        answers = []
        # Back to back, then after pauses longer than a thread waits for the next request.
        for pause, (_, penguin) in zip([0, 0, 0, 0.05, 0, 0.3, 0, 0], sent):
            time.sleep(pause)
            status, species, connection = _classify(conn, penguin)
            answers.append((status, species))
            assert connection != "close"
            if len(answers) == 1:
                first_socket = conn.sock
            assert conn.sock is first_socket  # http.client reconnects silently after a close
        assert answers == [(200, name) for name, _ in sent]
    finally:
        conn.close()


def test_requests_sent_together_on_one_connection_are_each_answered_in_order(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(b"".join(_raw(penguin) for _, penguin in SPECIES * 2))
        reader = _OneFile(conn.makefile("rb"))
        species = []
        for _ in range(len(SPECIES) * 2):
            response = http.client.HTTPResponse(reader)
            response.begin()
            assert response.status == 200
            species.append(json.loads(response.read())["species_name"])
    assert species == [name for name, _ in SPECIES * 2]


def test_a_client_sending_back_to_back_does_not_hold_back_another_on_a_one_thread_worker(live_stack):
    """The busy client's thread gives way as soon as another connection waits for it."""
    with gunicorn({**live_stack.env, **THREADED}, workers=1, threads=1) as server:
        busy = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        answered: list[float] = []
        stop = threading.Event()
        failures: list[str] = []

        def hammer() -> None:
            while not stop.is_set():
                status, _, _ = _classify(busy, ADELIE)
                if status != 200:
                    failures.append(str(status))
                answered.append(time.monotonic())

        thread = threading.Thread(target=hammer, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while len(answered) < 50 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(answered) >= 50, "the busy client was not answered"
            waits = []
            for _ in range(5):
                other = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                try:
                    sent = time.monotonic()
                    status, species, _ = _classify(other, GENTOO)
                    done = time.monotonic()
                finally:
                    other.close()
                assert (status, species) == (200, "Gentoo")
                # How many of the busy client's answers went out while the other one waited.
                waits.append(sum(1 for moment in list(answered) if sent < moment < done))
        finally:
            stop.set()
            thread.join(timeout=30)
            busy.close()
    assert not failures
    # One answer in progress when the other client connects, one for its request to be read:
    # never a run of the busy client's requests.
    assert max(waits) <= 3, waits


def test_a_client_stalling_halfway_through_its_next_request_is_let_go_and_others_are_answered(live_stack):
    env = {**live_stack.env, **THREADED, "GUNICORN_REQUEST_READ_TIMEOUT": "1"}
    with gunicorn(env, workers=1, threads=2) as server:
        stalled, readers = [], []
        try:
            for _ in range(4):  # twice as many as the worker has threads
                conn = socket.create_connection(("127.0.0.1", server.port), timeout=30)
                stalled.append(conn)
                whole = _raw(ADELIE)
                conn.sendall(whole)
                reader = conn.makefile("rb")
                response = http.client.HTTPResponse(_OneFile(reader))
                response.begin()
                assert response.status == 200
                response.read()
                conn.sendall(whole[: len(whole) - 20])  # the next request, cut short
                readers.append(reader)
            started = time.monotonic()
            for _ in range(3):
                answer = request("GET", f"{server.url}/healthz", timeout=30)
                assert answer.status == 200, answer.error
            classify = request("POST", f"{server.url}/classify/knn", ADELIE, timeout=30)
            assert classify.status == 200, (classify.status, classify.body[:300])
            assert time.monotonic() - started < 20
            # Each stalled client is let go: a 400 for the body cut short, then the connection closes.
            for reader in readers:
                answer = reader.read()
                assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
        finally:
            for conn in stalled:
                conn.close()
