"""gunicorn's threaded worker with a bound on how long a client may take to send its request.

The stock ``gthread`` worker hands a connection to a thread as soon as its first bytes
arrive, and that thread then waits as long as the client likes for the rest: a handful of
half-sent requests hold every thread and nothing else is answered. Here every read (and
write) on a client's socket gives up after ``GUNICORN_REQUEST_READ_TIMEOUT`` seconds, so a
stalled client holds a thread for at most that long. Idle kept-alive connections cost no
thread at all (they wait in the worker's poller), so a few slow clients can never starve
``/healthz``. A reverse proxy that buffers whole requests (docker-compose's ``proxy``)
keeps slow clients off gunicorn altogether.

A kept-alive connection whose client has already sent its next request when the answer
goes out (within ``NEXT_REQUEST_WAIT``) is served again by the same thread, as long as no
other connection is waiting for a thread. The stock worker hands every connection back to
its poller after each answer, and the poller hands it to a thread again: two thread
hand-offs per request, each waiting for the GIL. Any other connection that becomes
readable meanwhile is queued for a thread, and the loop gives way to it after the answer it
is writing.
"""

from __future__ import annotations

import errno
import os
import select

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


# How long a thread that has just answered waits for the same client's next request before
# handing the connection back to the poller, and how many requests it serves in a row.
NEXT_REQUEST_WAIT = 0.002
NEXT_REQUEST_MAX = 32


def _next_request_arrived(conn, wait: float) -> bool:
    """Whether the client's next request has started arriving (read ahead, or on the socket)."""
    if conn.parser.unreader.buf.getvalue():
        return True
    pending = getattr(conn.sock, "pending", None)  # TLS: bytes already decrypted
    if pending is not None and pending():
        return True
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return bool(poller.poll(wait * 1000))


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

    def handle(self, conn):
        keep = super().handle(conn)
        served = 1
        while (
            keep is True
            and served < NEXT_REQUEST_MAX
            and self.alive
            and not conn.is_http2
            and self._no_connection_waiting()
            and _next_request_arrived(conn, NEXT_REQUEST_WAIT)
        ):
            keep = super().handle(conn)
            served += 1
        return keep

    def _no_connection_waiting(self) -> bool:
        # Connections the poller found readable wait in the pool's queue for a thread.
        queue = getattr(self.tpool, "_work_queue", None)
        return queue is not None and queue.empty()

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
