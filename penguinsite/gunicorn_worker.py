"""gunicorn workers that bound how long a client may take to send its request.

Two workers, both bounded by ``GUNICORN_REQUEST_READ_TIMEOUT`` (15 s) and both logging each
client let go as one WARNING line naming the timeout, where gunicorn logs an ERROR with a
traceback:

- ``BufferingWorker`` (the default, penguinsite/gunicorn.conf.py): one request at a time per
  process, as gunicorn's sync worker, served only once it has arrived. A connection whose
  request is still arriving waits in the worker's selector, which reads it as its bytes come
  in; a slow or stalled client holds no worker at all. A process takes a connection only when
  it is free, so each request goes to a free worker or waits in the kernel's queue for the
  first one to be free: under load, no request waits behind another in a busy process while
  a process sits idle. Each answer closes its connection (no keep-alive).
- ``ThreadWorker``: gunicorn's threaded worker with keep-alive, whose every read (and write)
  on a client's socket gives up after the timeout, so a stalled client holds a thread for at
  most that long. It answers more requests per second under load, with a longer tail.

A reverse proxy that buffers whole requests (docker-compose's ``proxy``) keeps slow clients
off gunicorn altogether.

In the threaded worker, a kept-alive connection whose client has already sent its next
request when the answer goes out (within ``NEXT_REQUEST_WAIT``) is served again by the same
thread, as long as no other connection is waiting for a thread. The stock worker hands every
connection back to its poller after each answer, and the poller hands it to a thread again:
two thread hand-offs per request, each waiting for the GIL. Any other connection that becomes
readable meanwhile is queued for a thread, and the loop gives way to it after the answer it
is writing.

A connection that ends is closed as gunicorn closes it (its side shut first, then whatever
the client still sends read and dropped until the client closes, for at most 2 s), but by
one lingering thread that does it for every closing connection at once. The stock workers
linger on their main thread, one connection after another: each client let go after a
stalled request held up the worker's whole event loop, /healthz included, for 2 s.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import resource
import select
import selectors
import socket
import threading
import time

from gunicorn import http, util
from gunicorn.workers import gthread, sync


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


def _set_up(worker) -> _Lingerer:
    """What both workers do first in their own process: the read timeout, the timed-out
    client's log line, and the lingering thread's closer. That one is made in the worker, not
    in the master that imports this module: a selector is a file descriptor that forked
    workers must not share."""
    _BoundedConnection.read_timeout = request_read_timeout()
    error_log = getattr(worker.log, "error_log", None)
    if error_log is not None:
        error_log.addFilter(_TimedOutClientLine())
    return _Lingerer()


class ThreadWorker(gthread.ThreadWorker):
    def init_process(self) -> None:
        _BoundedConnection.lingerer = _set_up(self)
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


# A request whose body is at most this long is served once all of it has arrived: the
# proxy's own limit (deploy/nginx), above the service's (PENGUIN_MAX_BODY_BYTES, 8 MiB), which
# refuses a longer body from its Content-Length alone, without reading it. A chunked body is
# read by the application, every read bounded by the read timeout.
WHOLE_BODY_LIMIT = 16 * 1024 * 1024
HEADERS_LIMIT = 65536
# What one worker holds of requests still arriving, at most; past it, a request is refused
# with a 503 rather than the worker growing without bound.
ARRIVING_BYTES_LIMIT = 256 * 1024 * 1024
# A connection just taken usually has its request on the way: how long to wait for it before
# setting the connection aside.
FIRST_BYTES_WAIT = 0.01
HEARTBEAT_INTERVAL = 0.5
# How long a worker out of descriptors (or memory) leaves new connections to the others.
ACCEPT_PAUSE = 0.5
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)")
_EXPECT = re.compile(rb"\r\nexpect:[^\r\n]*", re.IGNORECASE)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_BUSY_BODY = b'{"detail": "The server is busy receiving other requests; try again shortly.", "code": "unavailable"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


def _whole(data: bytes) -> tuple[bool, int]:
    """Whether ``data`` holds enough of a request to serve it, and how many bytes it needs."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        # Headers past any limit, or ended by bare line feeds: the parser answers them (400).
        return len(data) >= HEADERS_LIMIT or b"\n\n" in data, HEADERS_LIMIT
    head = data[:end].lower()
    if b"\r\ntransfer-encoding:" in head:
        return True, 0  # a chunked body: read by the application
    match = _CONTENT_LENGTH.search(head)
    length = int(match.group(1)) if match else 0
    need = end + 4 + length
    return length > WHOLE_BODY_LIMIT or len(data) >= need, need


def _waits_for_continue(data: bytes) -> bool:
    """Whether the client has sent its headers and waits for "100 Continue" before its body."""
    end = data.find(b"\r\n\r\n")
    return end >= 0 and b"\r\nexpect: 100-continue" in data[:end].lower()


def _arrived(sock) -> bool | None:
    """Whether the request waiting on ``sock`` has arrived, looked at without taking it; None if
    the client has gone. Waits for its first bytes as long as the socket's timeout says."""
    size = 8192
    while True:
        try:
            data = sock.recv(size, socket.MSG_PEEK)
        except (TimeoutError, BlockingIOError, InterruptedError):
            return False
        except OSError:
            return None
        if not data:
            return None
        whole, need = _whole(data)
        if whole or len(data) < size or need <= size:
            return whole
        size = need


class _Arriving:
    __slots__ = ("sock", "addr", "listener", "buf", "deadline", "continued")

    def __init__(self, sock, addr, listener, deadline):
        self.sock, self.addr, self.listener, self.deadline = sock, addr, listener, deadline
        self.buf = bytearray()
        self.continued = False  # "100 Continue" sent


class BufferingWorker(sync.SyncWorker):
    """gunicorn's sync worker, serving each request only once it has arrived.

    A process serves one request at a time and takes a connection only when it is free, so
    a request goes to a free worker or waits in the kernel's queue for the first one to be
    free. Unlike gunicorn's own sync worker, a connection whose request has not arrived yet
    is set aside in the worker's selector, which reads it as its bytes come in: a slow or
    stalled client holds no worker, and is let go after ``GUNICORN_REQUEST_READ_TIMEOUT``.
    Each answer closes its connection; the client's side of the close is awaited by the
    lingering thread, not by the worker. (gunicorn replaces a worker class whose name ends
    in ``SyncWorker`` by its threaded worker when ``threads`` is above 1: hence this name.)
    """

    def init_process(self) -> None:
        self._lingerer = _set_up(self)
        super().init_process()

    def run(self) -> None:
        if self.cfg.is_ssl:
            return super().run()
        self._selector = selectors.DefaultSelector()
        self._arriving: dict[int, _Arriving] = {}
        self._arriving_bytes = 0
        self._selector.register(self.PIPE[0], selectors.EVENT_READ, None)
        self._accepting = False
        self._accept_paused_until = 0.0
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        most = self.cfg.worker_connections
        if soft_limit != resource.RLIM_INFINITY:
            most = max(16, min(most, soft_limit - 64))
        self._looping = True
        threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True).start()
        try:
            while self.alive:
                self.notify()
                now = time.monotonic()
                self._accept(len(self._arriving) < most and now >= self._accept_paused_until)
                timeout = 1.0
                if not self._accepting and self._accept_paused_until > now:
                    timeout = min(timeout, self._accept_paused_until - now)
                if self._arriving:
                    first = min(arriving.deadline for arriving in self._arriving.values())
                    timeout = max(0.0, min(timeout, first - now))
                for key, _ in self._selector.select(timeout):
                    if key.data is None:
                        try:
                            os.read(self.PIPE[0], 4096)
                        except OSError:
                            pass
                    elif isinstance(key.data, _Arriving):
                        self._read(key.data)
                    else:
                        self._take(key.fileobj)
                    if not self.alive:
                        break
                self._expire(time.monotonic())
                if not self.is_parent_alive():
                    break
        finally:
            self._looping = False
            for arriving in list(self._arriving.values()):
                self._forget(arriving)
                util.close(arriving.sock)
            self._selector.close()

    def _heartbeat(self) -> None:
        # The arbiter replaces a worker silent for GUNICORN_TIMEOUT. As in the threaded worker,
        # whose main loop checks in while its threads serve, a long request (a training run
        # in-process, without a broker) is not cut short, nor is a request that hangs; only a
        # process stuck in C code holding the GIL falls silent.
        while self._looping:
            self.notify()
            time.sleep(HEARTBEAT_INTERVAL)

    def _accept(self, enabled: bool) -> None:
        if enabled == self._accepting:
            return
        for listener in self.sockets:
            if enabled:
                listener.setblocking(False)
                self._selector.register(listener, selectors.EVENT_READ, listener)
            else:
                self._selector.unregister(listener)
        self._accepting = enabled

    def _take(self, listener) -> None:
        try:
            client, addr = listener.accept()
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return  # another worker took it
            if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # Out of descriptors or memory: leave new connections to the other workers (or
                # the kernel's queue) for a moment rather than dying with every client set aside.
                self.log.warning("Cannot take a connection (%s); trying again in %s s.", error.strerror, ACCEPT_PAUSE)
                self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                self._accept(False)
                return
            raise
        util.close_on_exec(client)
        client.settimeout(FIRST_BYTES_WAIT)
        arrived = _arrived(client)
        if arrived is None:
            util.close(client)
        elif arrived:
            self._serve(listener, client, addr, b"")
        else:
            client.setblocking(False)
            arriving = _Arriving(client, addr, listener, time.monotonic() + _BoundedConnection.read_timeout)
            self._arriving[client.fileno()] = arriving
            self._selector.register(client, selectors.EVENT_READ, arriving)
            self._read(arriving)

    def _read(self, arriving: _Arriving) -> None:
        """Take what has arrived of a request set aside; serve it once it has all arrived."""
        while True:
            try:
                data = arriving.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                if not arriving.continued and _waits_for_continue(arriving.buf):
                    # The client sends its body once told to: tell it here, and wait for the body.
                    arriving.continued = True
                    try:
                        arriving.sock.send(_CONTINUE)
                    except OSError:
                        self._forget(arriving)
                        util.close(arriving.sock)
                return
            except OSError:
                data = b""
            if not data:  # the client has gone
                self._forget(arriving)
                util.close(arriving.sock)
                return
            if self._arriving_bytes + len(data) > ARRIVING_BYTES_LIMIT:
                self._forget(arriving)
                self.log.warning(
                    "Requests still arriving hold %d bytes; one more was refused (503).", self._arriving_bytes
                )
                try:
                    arriving.sock.send(_BUSY)
                except OSError:
                    pass
                self._lingerer.close(arriving.sock)
                return
            arriving.buf += data
            self._arriving_bytes += len(data)
            # A client that keeps sending is not stalled: the read timeout counts from its last bytes.
            arriving.deadline = time.monotonic() + _BoundedConnection.read_timeout
            if _whole(arriving.buf)[0]:
                self._forget(arriving)
                taken = bytes(arriving.buf)
                if arriving.continued:  # answered already: gunicorn must not send it again
                    taken = _EXPECT.sub(b"", taken, count=1)
                self._serve(arriving.listener, arriving.sock, arriving.addr, taken)
                return

    def _forget(self, arriving: _Arriving) -> None:
        if self._arriving.pop(arriving.sock.fileno(), None) is not None:
            self._arriving_bytes -= len(arriving.buf)
            self._selector.unregister(arriving.sock)

    def _expire(self, now: float) -> None:
        for arriving in [a for a in self._arriving.values() if a.deadline <= now]:
            self._forget(arriving)
            if arriving.buf:
                self.log.warning(
                    "A client sent no request, or read no answer, for %s s; its connection was closed.",
                    f"{_BoundedConnection.read_timeout:g}",
                )
            else:  # a connection opened ahead of need (browsers do), never used
                self.log.debug("Closing a connection that sent nothing.")
            util.close(arriving.sock)

    def _serve(self, listener, client, addr, taken: bytes) -> None:
        req = None
        client.settimeout(_BoundedConnection.read_timeout)
        try:
            parser = http.get_parser(self.cfg, client, addr)
            if taken:
                parser.unreader.unread(taken)
            req = next(parser)
            self.handle_request(listener, req, client, addr)
        except http.errors.NoMoreData as e:
            self.log.debug("Ignored premature client disconnection. %s", e)
        except StopIteration as e:
            self.log.debug("Closing connection. %s", e)
        except OSError as e:
            if e.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
            else:
                self.log.debug("Ignoring a connection that ended: %s", e)
        except BaseException as e:
            self.handle_error(req, client, addr, e)
        finally:
            self._close(client)

    def _close(self, client) -> None:
        # gunicorn's graceful close: our side shut, then whatever the client still sends read
        # and dropped until it closes. A client that has closed already is done with here; any
        # other is left to the lingering thread, the worker never waiting for a client's close.
        try:
            client.shutdown(socket.SHUT_WR)
            client.setblocking(False)
            if not client.recv(65536):
                util.close(client)
                return
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            util.close(client)
            return
        self._lingerer.close(client)
