"""The service's own processes: manage.py, gunicorn with penguinsite/gunicorn.conf.py, a Celery worker.

Each runs in a process group of its own, is waited for with a deadline, and is stopped on
the way out whatever happened inside. ``live_stack`` puts gunicorn in front of a private
PostgreSQL and a private Redis.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .http import http
from .postgres import PrivatePostgres, private_postgres
from .processes import BIN, PYTHON, REPO, held_port, log_tail, start_process, stop_process, wait_for
from .redis import PrivateRedis, private_redis

GUNICORN_CONF = REPO / "penguinsite" / "gunicorn.conf.py"

# Variables of the caller's environment that must not leak into a process we configure.
_INHERITED = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "PENGUIN_CACHE_URL", "DJANGO_SETTINGS_MODULE")


def service_env(folder: Path, **overrides: str) -> dict[str, str]:
    """The environment of a private stack: its own var/ and artifacts folders, JSON logs."""
    env = {key: value for key, value in os.environ.items() if key not in _INHERITED}
    env.update(
        {
            "PENGUIN_VAR_DIR": str(folder / "var"),
            "PENGUIN_ARTIFACTS_DIR": str(folder / "artifacts"),
            "DJANGO_SECRET_KEY": "private-stack-" + "x" * 50,
            "DJANGO_DEBUG": "0",
            "DJANGO_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``manage.py <args>`` with ``env``; raises AssertionError with its output on error."""
    result = subprocess.run(
        [PYTHON, str(REPO / "manage.py"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


@dataclass
class LiveServer:
    url: str
    port: int
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def workers(self) -> list[int]:
        """The pids of gunicorn's worker processes."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []


def _answers(server: LiveServer, path: str, status: int | None, *, workers: bool = True) -> bool:
    """Whether the server answers ``path`` (with ``status``, or anything) and, for gunicorn, has workers."""
    if server.process.poll() is not None:
        raise AssertionError(f"the server exited with {server.process.returncode}:\n{server.log_text()[-4000:]}")
    answer = http("GET", f"{server.url}{path}", timeout=2)
    answered = answer.status == status if status is not None else answer.status != 0
    return answered and (not workers or bool(server.workers()))


@contextlib.contextmanager
def gunicorn(
    env: dict[str, str],
    *,
    app: str = "penguinsite.wsgi",
    workers: int | None = 2,
    threads: int | None = 4,
    ready_path: str = "/healthz",
    ready_status: int | None = 200,
    log: Path | None = None,
    timeout: float = 60,
) -> Iterator[LiveServer]:
    """gunicorn with the service's own config on a free 127.0.0.1 port, once ``ready_path`` answers.

    It must answer ``ready_status`` (None: any HTTP answer). ``workers``/``threads`` of None keep
    what the config file (and ``env``) say.
    """
    with held_port() as port:
        log = log or Path(env["PENGUIN_VAR_DIR"]) / f"gunicorn-{port}.log"
        server_env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_GRACEFUL_TIMEOUT": "5"}
        if workers is not None:
            server_env["GUNICORN_WORKERS"] = str(workers)
        if threads is not None:
            server_env["GUNICORN_THREADS"] = str(threads)
        argv = [str(BIN / "gunicorn"), app, "-c", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{port}"]
        process = start_process(argv, env=server_env, log=log)
        server = LiveServer(url=f"http://127.0.0.1:{port}", port=port, process=process, log=log)
        try:
            wait_for(
                lambda: _answers(server, ready_path, ready_status),
                timeout=timeout,
                what=f"gunicorn to answer {ready_path}",
                interval=0.2,
            )
            yield server
        finally:
            stop_process(process, timeout=30)


@contextlib.contextmanager
def uvicorn(
    env: dict[str, str], *, app: str, log: Path, ready_path: str = "/", timeout: float = 60
) -> Iterator[LiveServer]:
    """One uvicorn process serving the ASGI ``app`` on a free 127.0.0.1 port, once ``ready_path`` answers."""
    with held_port() as port:
        argv = [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        process = start_process(argv, env=env, log=log)
        server = LiveServer(url=f"http://127.0.0.1:{port}", port=port, process=process, log=log)
        try:
            wait_for(
                lambda: _answers(server, ready_path, None, workers=False),
                timeout=timeout,
                what=f"uvicorn to answer {ready_path}",
            )
            yield server
        finally:
            stop_process(process, timeout=30)


@contextlib.contextmanager
def celery_worker(
    env: dict[str, str], *, log: Path, node: str | None = None, timeout: float = 60
) -> Iterator[subprocess.Popen]:
    """One prefork worker with one child process (the training runs in that child), once it is ready."""
    argv = [str(BIN / "celery"), "-A", "penguinsite", "worker", "--concurrency", "1", "--pool", "prefork"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"]
    if node:
        argv += ["-n", node]
    process = start_process(argv, env=env, log=log)
    try:
        wait_for(
            lambda: " ready." in log.read_text(errors="replace") or process.poll() is not None,
            timeout=timeout,
            what="the celery worker to be ready",
            interval=0.2,
        )
        if process.poll() is not None:
            raise AssertionError(f"celery worker exited with {process.returncode}:\n{log_tail(log)}")
        yield process
    finally:
        stop_process(process, timeout=15)


# --- the production-shaped stack shared by the live fault tests ------------------------------------

STAFF_TOKEN_SCRIPT = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
User = get_user_model()
staff, _ = User.objects.get_or_create(username="fault-staff", defaults={"is_staff": True})
staff.set_password("fault-staff-password-1")
from django.contrib.auth.models import Group
staff.groups.add(Group.objects.get(name="ML engineers"))
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


@contextlib.contextmanager
def live_stack() -> Iterator[Stack]:
    """A live service: ``knn`` trained, a staff user with a token, throttles off (load tests)."""
    folder = Path(tempfile.mkdtemp(prefix="penguin-test-stack-"))
    try:
        with private_postgres() as pg, private_redis() as redis:
            env = service_env(
                folder,
                DATABASE_URL=pg.url,
                CELERY_BROKER_URL=redis.url,
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


# --- the service as `make run` starts it ------------------------------------------------------

ADMIN_USER = "admin"
ADMIN_PASSWORD = "local-admin-password-1"


@dataclass
class LocalServer:
    """What `make run` serves: SQLite, artifacts on disk, no broker, the default models."""

    folder: Path
    env: dict[str, str]
    server: LiveServer
    bootstrap_output: str

    @property
    def url(self) -> str:
        return self.server.url

    def manage(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return manage(self.env, *args, timeout=timeout)


@contextlib.contextmanager
def local_server(*, train: bool = True) -> Iterator[LocalServer]:
    """`make run`'s steps in a fresh folder (migrate, bootstrap, gunicorn), throttles off.

    The admin login is ``ADMIN_USER``/``ADMIN_PASSWORD``; ``train=False`` skips the default models.
    """
    folder = Path(tempfile.mkdtemp(prefix="penguin-test-local-"))
    try:
        env = service_env(
            folder,
            DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}",
            DJANGO_SUPERUSER_USERNAME=ADMIN_USER,
            DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
            PENGUIN_THROTTLE_ANON="off",
            PENGUIN_THROTTLE_USER="off",
            PENGUIN_LOG_FORMAT="text",
        )
        manage(env, "migrate", "--noinput")
        bootstrap = manage(env, "bootstrap", *([] if train else ["--no-train"]), timeout=600)
        with gunicorn(env, workers=1, threads=4) as server:
            yield LocalServer(folder=folder, env=env, server=server, bootstrap_output=bootstrap.stdout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
