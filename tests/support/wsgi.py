"""Requests straight through ``penguinsite.wsgi.application``, as gunicorn makes them (Django's
test client has its own handler, so it never takes the paths chosen there)."""

from __future__ import annotations

import contextlib
import io

from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from penguinsite import wsgi as wsgi_module


@contextlib.contextmanager
def same_connection():
    """As Django's test client does: the request must not close the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def wsgi(
    method: str, path: str, body: bytes = b"", *, as_served: bool = False, **headers: str
) -> tuple[int, dict[str, list[str]], bytes]:
    """One request through penguinsite.wsgi.application, as gunicorn calls it.

    ``as_served``: Django's own connection handling runs as in a served worker (a connection
    broken or past its age is closed when a request starts and ends), which a test's
    transaction cannot live through: for transactional tests."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **headers,
    }
    answer: dict = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"] = int(status.split()[0])
        answer["headers"] = {}
        for name, value in response_headers:
            answer["headers"].setdefault(name.lower(), []).append(value)

    with contextlib.nullcontext() if as_served else same_connection():
        chunks = wsgi_module.application(environ, start_response)
        try:
            data = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):  # optional in WSGI: a plain list has none
                chunks.close()
    return answer["status"], answer["headers"], data
