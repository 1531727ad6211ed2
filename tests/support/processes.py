"""Free ports, polling with a deadline, and process groups started and stopped whatever happens.

Ports come from one range (18800-18899). Several test runs may share the machine: a port
is held with a lock file while in use, and is free only if nothing listens on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
BIN = Path(PYTHON).parent
PORTS = range(18800, 18900)
PORT_LOCKS = Path(tempfile.gettempdir()) / "penguin-test-ports"
_port_lock = threading.Lock()
_ports_taken: dict[int, int] = {}  # port -> file descriptor of its lock


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05):
    """Poll ``condition`` until it returns something truthy; raise AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A port of the range that no other run holds and nothing listens on; hold it until released."""
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


@contextlib.contextmanager
def held_port() -> Iterator[int]:
    port = free_port()
    try:
        yield port
    finally:
        release_port(port)


def need_tool(path: str | None, what: str) -> str:
    """The tool's path; skip the test when it is missing locally (CI must have it)."""
    if path:
        return path
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"CI must provide {what}")
    pytest.skip(f"{what} is not installed")


def stop_process(process: subprocess.Popen, *, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``timeout``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    # Leftover children (gunicorn or celery pool processes) go with the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)


def start_process(argv: list[str], *, env: dict[str, str], log: Path | None) -> subprocess.Popen:
    """``argv`` in the repository, in a process group of its own, output to ``log`` (or nowhere)."""
    if log is None:
        return subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@contextlib.contextmanager
def running(
    argv: list[str], *, env: dict[str, str], log: Path, stop_timeout: float = 10.0
) -> Iterator[subprocess.Popen]:
    """``start_process`` as a context manager: the group is stopped on the way out."""
    process = start_process(argv, env=env, log=log)
    try:
        yield process
    finally:
        stop_process(process, timeout=stop_timeout)


def log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


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


def django_start(env: dict[str, str]) -> subprocess.CompletedProcess:
    """``django.setup()`` in a fresh interpreter with only ``env`` configuring the service."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PENGUIN_"))}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"):
        clean.pop(name, None)
    clean["DJANGO_SETTINGS_MODULE"] = "penguinsite.settings"
    return subprocess.run(
        [PYTHON, "-c", "import django; django.setup(); print('started')"],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
