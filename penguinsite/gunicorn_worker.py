"""gunicorn's threaded worker with a bound on how long a client may take to send its request.

The stock ``gthread`` worker hands a connection to a thread as soon as its first bytes
arrive, and that thread then waits as long as the client likes for the rest: a handful of
half-sent requests hold every thread and nothing else is answered. Here every read (and
write) on a client's socket gives up after ``GUNICORN_REQUEST_READ_TIMEOUT`` seconds, so a
stalled client holds a thread for at most that long. Idle kept-alive connections cost no
thread at all (they wait in the worker's poller), so a few slow clients can never starve
``/healthz``. A reverse proxy that buffers whole requests (docker-compose's ``proxy``)
keeps slow clients off gunicorn altogether. Each client let go is logged as one WARNING line
naming the timeout, where gunicorn logs an ERROR with a traceback.

A kept-alive connection whose client has already sent its next request when the answer
goes out (within ``NEXT_REQUEST_WAIT``) is served again by the same thread, as long as no
other connection is waiting for a thread. The stock worker hands every connection back to
its poller after each answer, and the poller hands it to a thread again: two thread
hand-offs per request, each waiting for the GIL. Any other connection that becomes
readable meanwhile is queued for a thread, and the loop gives way to it after the answer it
is writing.

A connection that ends is closed as gunicorn closes it (its side shut first, then whatever
the client still sends read and dropped until the client closes, for at most 2 s), but by
one lingering thread that does it for every closing connection at once. The stock worker
lingers on its main thread, one connection after another: each client let go after a stalled
request held up the worker's whole event loop, /healthz included, for 2 s.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import selectors
import socket
import threading
import time

from gunicorn import util
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


# gunicorn's graceful close (util.close_graceful): how long to wait for the client's own close,
# and how much of what it still sends to read and drop meanwhile.
LINGER_TIMEOUT = 2.0
LINGER_MAX_DRAIN = 65536


class _Lingerer:
    """Closes connections as gunicorn's graceful close does, all at once on one thread.

    Each socket's sending side is shut at once (the client sees the end of the answer), then
    the socket waits in a selector: what the client still sends is read and dropped, and the
    socket is closed when the client closes, after ``LINGER_MAX_DRAIN`` bytes, or after
    ``LINGER_TIMEOUT`` seconds. Closing with unread bytes in the buffer would send a reset,
    which can cut the answer short on the client's side.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def close(self, sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:
            util.close(sock)  # the client is gone already
            return
        with self._lock:
            self._selector.register(sock, selectors.EVENT_READ, [time.monotonic() + LINGER_TIMEOUT, 0])
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="linger", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                key.data[1] += len(data)
                if not data or key.data[1] >= LINGER_MAX_DRAIN:
                    self._finish(key.fileobj)
            now = time.monotonic()
            with self._lock:
                expired = [key.fileobj for key in self._selector.get_map().values() if key.data[0] <= now]
            for sock in expired:
                self._finish(sock)

    def _finish(self, sock: socket.socket) -> None:
        with self._lock:
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                return
        util.close(sock)


class _BoundedConnection(gthread.TConn):
    """A connection whose blocking socket operations time out instead of waiting for ever,
    closed by the worker's lingering thread."""

    read_timeout = 15.0
    lingerer: _Lingerer | None = None

    def init(self) -> None:
        # The worker makes the socket blocking (no timeout) before every request; bound it again.
        super().init()
        self.sock.settimeout(self.read_timeout)

    def close(self, graceful: bool = False) -> None:
        if graceful and self.lingerer is not None:
            self.lingerer.close(self.sock)
        else:
            super().close(graceful)


class _TimedOutClientLine(logging.Filter):
    """gunicorn logs a client whose socket timed out as an ERROR with a traceback ("Socket error
    processing request."): the client's doing, one line per stalled client, not a fault of the
    service. It becomes one WARNING line naming the timeout; other socket errors stay as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        # A socket's own timeout has no errno; the kernel's (ETIMEDOUT, a peer gone) has one.
        if record.msg == "Socket error processing request." and isinstance(error, TimeoutError) and error.errno is None:
            if not logging.getLogger(record.name).isEnabledFor(logging.WARNING):
                return False
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
            record.msg = "A client sent no request, or read no answer, for %s s; its connection was closed."
            record.args = (f"{_BoundedConnection.read_timeout:g}",)
            record.exc_info = record.exc_text = None
        return True


class ThreadWorker(gthread.ThreadWorker):
    def init_process(self) -> None:
        _BoundedConnection.read_timeout = request_read_timeout()
        error_log = getattr(self.log, "error_log", None)
        if error_log is not None:
            error_log.addFilter(_TimedOutClientLine())
        # Made in the worker, not in the master that imports this module: a selector is a file
        # descriptor that forked workers must not share.
        _BoundedConnection.lingerer = _Lingerer()
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
