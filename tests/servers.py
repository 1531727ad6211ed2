"""Private servers for the fault tests: Redis, PostgreSQL, gunicorn and a Celery worker.

Each helper is a context manager that starts its own process on a free port of this
suite's range (18700-18799), waits until it answers, and stops it (and removes its files)
on the way out, whatever happened inside. A fault test may stop and start these servers
at will: nothing else in the suite uses them.

PostgreSQL refuses to run as root, so ``initdb`` and ``pg_ctl`` run as the ``postgres``
OS user (through ``runuser``) when the suite runs as root.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
PORTS = range(18700, 18800)
# Several test runs may share the machine: a port is held with a lock file while in use.
PORT_LOCKS = Path(tempfile.gettempdir()) / "penguin-h7-ports"
_port_lock = threading.Lock()
_ports_taken: dict[int, int] = {}  # port → file descriptor of its lock


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05):
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A port of this suite's range that no other run holds and nothing listens on."""
    PORT_LOCKS.mkdir(exist_ok=True)
    with _port_lock:
        for port in PORTS:
            if port in _ports_taken:
                continue
            fd = os.open(PORT_LOCKS / str(port), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    os.close(fd)
                    continue
            _ports_taken[port] = fd
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def release_port(port: int) -> None:
    with _port_lock:
        fd = _ports_taken.pop(port, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock


def need_tool(path: str | None, what: str) -> str:
    """The tool's path; skip the test when it is missing locally (CI must have it)."""
    if path:
        return path
    message = f"{what} is not installed"
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide {what}")
    pytest.skip(message)


def stop_process(process: subprocess.Popen, *, timeout: float = 10.0) -> None:
    """SIGTERM the process (and its group), then SIGKILL what is left after ``timeout``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (read from /proc)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces, so split after the last ")".
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(stat.split("/")[2]))
    return found


# --- Redis ------------------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = need_tool(shutil.which("redis-server"), "redis-server")
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(self.answers, timeout=10, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(port=free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        release_port(server.port)


# --- PostgreSQL -------------------------------------------------------------------------------


def _postgres_bin() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    found = candidates[-1] if candidates else shutil.which("initdb")
    return Path(need_tool(found, "PostgreSQL (initdb)")).parent


def _as_postgres(command: list[str]) -> list[str]:
    """Run as the postgres OS user when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return command
    return [need_tool(shutil.which("runuser"), "runuser"), "-u", "postgres", "--", *command]


@dataclass
class PrivatePostgres:
    port: int
    folder: Path
    bin: Path

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        result = subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), *args]),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise AssertionError(f"pg_ctl {args[-1]} failed ({result.returncode}): {result.stdout}\n{tail}")

    def init(self) -> None:
        subprocess.run(
            _as_postgres(
                [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
                + ["--no-sync", "--no-instructions"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        self._pg_ctl("-o", options, "-l", str(self.folder / "server.log"), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every client session at once (as a restart or failover does)."""
        self._pg_ctl("-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    pg_bin = _postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="penguin-h7-pg-"))
    server = PrivatePostgres(port=free_port(), folder=folder, bin=pg_bin)
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            with contextlib.suppress(Exception):
                server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
        release_port(server.port)


# --- the service's own processes -------------------------------------------------------------

# Variables of the suite's own environment that must not leak into a private stack.
_INHERITED_SERVICE_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "PENGUIN_CACHE_URL")


def service_env(folder: Path, **overrides: str) -> dict[str, str]:
    """The environment of a private stack: its own var/ and artifacts folders, JSON logs."""
    env = {key: value for key, value in os.environ.items() if key not in _INHERITED_SERVICE_VARIABLES}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        {
            "PENGUIN_VAR_DIR": str(folder / "var"),
            "PENGUIN_ARTIFACTS_DIR": str(folder / "artifacts"),
            "DJANGO_SECRET_KEY": "fault-tests-" + "x" * 50,
            "DJANGO_DEBUG": "0",
            "DJANGO_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``manage.py <args>`` in a private stack; fails the test with its output on error."""
    result = subprocess.run(
        [PYTHON, str(REPO / "manage.py"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 2, threads: int = 4) -> Iterator[LiveServer]:
    """gunicorn with the service's own config (penguinsite/gunicorn.conf.py) on a free port."""
    port = free_port()
    log = Path(env["PENGUIN_VAR_DIR"]) / f"gunicorn-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    server_env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "GUNICORN_GRACEFUL_TIMEOUT": "5",
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "penguinsite.wsgi", "-c", str(REPO / "penguinsite" / "gunicorn.conf.py")],
            env=server_env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {process.returncode}:\n{server.log_text()[-4000:]}")
            return http("GET", f"{server.url}/healthz", timeout=1).status == 200

        wait_for(healthy, timeout=60, what="gunicorn to answer /healthz", interval=0.2)
        yield server
    finally:
        stop_process(process)
        release_port(port)


@contextlib.contextmanager
def celery_worker(env: dict[str, str], *, log: Path) -> Iterator[subprocess.Popen]:
    """One prefork worker with one child process: the training runs in that child."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "celery"), "-A", "penguinsite", "worker", "--concurrency", "1", "--pool", "prefork"]
            + ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: "ready" in log.read_text(errors="replace") or process.poll() is not None,
            timeout=60,
            what="the celery worker to be ready",
            interval=0.2,
        )
        if process.poll() is not None:
            raise AssertionError(f"celery worker exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        yield process
    finally:
        stop_process(process, timeout=15)


# --- a small HTTP client ----------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    error: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self):
        return json.loads(self.body)


def http(
    method: str, url: str, body: object = None, *, headers: dict[str, str] | None = None, timeout: float = 10
) -> Answer:
    """One request; a refused connection or a timeout is status 0 with the error, not an exception."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, _lower(response.headers), response.read(), started=started)
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, _lower(exc.headers), exc.read(), started=started)
    except (urllib.error.URLError, OSError) as exc:
        return Answer(0, {}, b"", error=f"{type(exc).__name__}: {exc}", started=started)


def _lower(headers) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


class Clients:
    """``count`` threads sending requests in a loop until stopped; every answer is kept."""

    def __init__(self, count: int, send: Callable[[int], Answer]) -> None:
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(index, send), daemon=True) for index in range(count)]

    def _run(self, index: int, send: Callable[[int], Answer]) -> None:
        while not self._stop.is_set():
            answer = send(index)
            with self._lock:
                self.answers.append(answer)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


# --- the production-shaped stack shared by the live tests -----------------------------------------

STAFF_TOKEN_SCRIPT = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
User = get_user_model()
staff, _ = User.objects.get_or_create(username="fault-staff", defaults={"is_staff": True})
staff.set_password("fault-staff-password-1")
staff.save()
print(Token.objects.get_or_create(user=staff)[0].key)
"""


@dataclass
class Stack:
    """gunicorn, a private PostgreSQL and a private Redis (broker and cache; no worker reads it)."""

    folder: Path
    pg: PrivatePostgres
    redis: PrivateRedis
    env: dict[str, str]
    server: LiveServer
    staff_token: str

    @property
    def url(self) -> str:
        return self.server.url

    def manage(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return manage(self.env, *args, timeout=timeout)


@pytest.fixture(scope="session")
def live_stack() -> Iterator[Stack]:
    """One live service for the whole session: ``knn`` trained, a staff user with a token.

    Tests that use it must leave it serving (a test that stops PostgreSQL starts it again)
    and must not rely on what other tests trained; each trains its own model names.
    """
    folder = Path(tempfile.mkdtemp(prefix="penguin-h7-stack-"))
    try:
        with private_postgres() as pg, private_redis() as redis:
            env = service_env(
                folder,
                DATABASE_URL=pg.url,
                CELERY_BROKER_URL=redis.url,
                # Load tests send thousands of requests from one address.
                PENGUIN_THROTTLE_ANON="off",
                PENGUIN_THROTTLE_USER="off",
            )
            manage(env, "migrate", "--noinput")
            manage(env, "train_model", "knn")
            token = manage(env, "shell", "-c", STAFF_TOKEN_SCRIPT).stdout.strip().splitlines()[-1]
            with gunicorn(env) as server:
                yield Stack(folder=folder, pg=pg, redis=redis, env=env, server=server, staff_token=token)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
