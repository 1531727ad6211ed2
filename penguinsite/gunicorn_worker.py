"""gunicorn's threaded worker with a bound on how long a client may take to send its request.

The stock ``gthread`` worker hands a connection to a thread as soon as its first bytes
arrive, and that thread then waits as long as the client likes for the rest: a handful of
half-sent requests hold every thread and nothing else is answered. Here every read (and
write) on a client's socket gives up after ``GUNICORN_REQUEST_READ_TIMEOUT`` seconds, so a
stalled client holds a thread for at most that long. Idle kept-alive connections cost no
thread at all (they wait in the worker's poller), so a few slow clients can never starve
``/healthz``. A reverse proxy that buffers whole requests (docker-compose's ``proxy``)
keeps slow clients off gunicorn altogether.
"""

from __future__ import annotations

import errno
import os

from gunicorn.workers import gthread


def request_read_timeout() -> float:
    raw = os.environ.get("GUNICORN_REQUEST_READ_TIMEOUT", "").strip()
    try:
        value = float(raw) if raw else 15.0
    except ValueError:
        raise SystemExit(f"GUNICORN_REQUEST_READ_TIMEOUT: expected seconds; got {raw!r}.") from None
    if value <= 0:
        raise SystemExit(f"GUNICORN_REQUEST_READ_TIMEOUT: expected seconds above 0; got {raw!r}.")
    return value


class _BoundedConnection(gthread.TConn):
    """A connection whose blocking socket operations time out instead of waiting for ever."""

    read_timeout = 15.0

    def init(self) -> None:
        # The worker makes the socket blocking (no timeout) before every request; bound it again.
        super().init()
        self.sock.settimeout(self.read_timeout)


class ThreadWorker(gthread.ThreadWorker):
    def init_process(self) -> None:
        _BoundedConnection.read_timeout = request_read_timeout()
        super().init_process()

    def accept(self, listener) -> None:
        # gunicorn's own accept, with the bounded connection class (it has no hook for it).
        try:
            client_sock, client_addr = listener.accept()
            self.nr_conns += 1
            client_sock.setblocking(True)
            self.enqueue_req(_BoundedConnection(self.cfg, client_sock, client_addr, listener.getsockname()))
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
