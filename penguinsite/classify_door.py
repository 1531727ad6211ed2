"""POST /classify/<name> answered at the WSGI level, for the calls that need nothing more.

A script's classify call (no cookie, no Authorization header) needs a request id, the
anonymous rate limit, its body read and checked, the answer logged before it is sent, the
request counted in the metrics and the headers every answer carries. Django's handler, URL
resolver, middleware and DRF's dispatch cost more CPU than all of that together
(bench/README.md), so this door does exactly those steps, with the same code: the view's
``classify_answer``, DRF's throttle classes, the middleware's request-id rule, Django's own
security and clickjacking middleware (run once per scheme to learn their headers), and
Django's request_started/request_finished signals for the database connection's life cycle.
While only Django's own receivers listen to those two signals, the door does their work
itself (each database connection's query log emptied, and the connection closed if it is
broken or past its age, at the start and at the end): the signals' dispatch and the
receivers with nothing to do here cost about a twelfth of a classify's CPU. Any other
receiver (an app's, a library's, a test's) and the signals are sent as usual.

It only ever answers 200, or the API's own refusal when the log cannot be written (503, or
400 for a value the database cannot store; the row was tried, so the request is not
replayed). Everything else (a throttled client, a bad or oversized body, an unknown or
broken model, an unknown Host, HTTPS redirects) is handed, body and all, to the Django
path, which words every error as it always has: one place for errors and their wording.
``PENGUIN_CLASSIFY_DOOR=0`` turns the door off.
"""

from __future__ import annotations

import functools
import io
import time
import weakref
from http import HTTPStatus
from types import SimpleNamespace

import orjson
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core import signals
from django.core.cache import close_caches
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import DisallowedHost
from django.core.handlers.base import reset_urlconf
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.db import DatabaseError, close_old_connections, connections, reset_queries
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.module_loading import import_string
from rest_framework.settings import api_settings

from classifier import metrics
from classifier.api.compat import ClassifyView, classify_answer
from core.api.parsers import BoundedJSONParser

from .logs import request_id_bound
from .middleware import request_id_for

PREFIX = "/classify/"
ROUTE = "/classify/<str:name>"  # the metrics' route label, as Django's resolver names it
_ANONYMOUS = AnonymousUser()
_ALLOW = ", ".join(ClassifyView().allowed_methods)
_known_hosts: dict[tuple, bool] = {}


def door_open(environ: dict) -> bool:
    """Whether this request may take the door (the caller already checked: a POST without a
    cookie to /classify/<one path segment>)."""
    path = environ["PATH_INFO"]
    return (
        settings.PENGUIN_CLASSIFY_DOOR
        and path.startswith(PREFIX)
        and "HTTP_AUTHORIZATION" not in environ
        and "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        and path.isascii()
        and "\x00" not in path
        and not settings.DEBUG  # DEBUG's query log is emptied by Django's handler only
        and not settings.DISALLOWED_USER_AGENTS
        and not settings.PREPEND_WWW
    )


def classify(environ: dict, start_response, fallback) -> list[bytes]:
    """Answer the classify call in ``environ``, or hand it to ``fallback`` (a WSGI app)."""
    started = time.perf_counter()
    secure = _is_secure(environ)
    if (settings.SECURE_SSL_REDIRECT and not secure) or not _host_allowed(environ):
        return fallback(environ, start_response)
    try:
        body = BoundedJSONParser.read_bounded(environ["wsgi.input"], environ)
    except Exception:  # over the size limit (413) or the client left mid-body (400): Django's path words it
        return fallback(environ, start_response)
    _request_started(environ)
    supplied = environ.get("HTTP_X_REQUEST_ID", "")
    request_id = request_id_for(supplied)
    name = environ["PATH_INFO"][len(PREFIX) :]
    status = 200
    with request_id_bound(request_id):
        try:
            if not _admitted(environ):
                raise _HandOver
            data = orjson.loads(body)  # what orjson refuses, the Django path words as before
            answer, headers = classify_answer(name=name, data=data, started=started)
        except DatabaseError as exc:
            # The row was tried, so the request is not replayed (that could log it twice); the
            # API's exception handler words the refusal, as it does on the Django path.
            refusal = api_settings.EXCEPTION_HANDLER(exc, {"request": SimpleNamespace(path=environ["PATH_INFO"])})
            status, answer = refusal.status_code, refusal.data
            headers = {name: value for name, value in refusal.items() if name != "Content-Type"}
        except Exception:
            return _hand_over(environ, start_response, fallback, body)
    payload = orjson.dumps(answer)
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [
            ("Content-Type", "application/json"),
            *headers.items(),
            ("Allow", _ALLOW),
            ("Vary", "Accept"),
            *_added_headers(secure),
            ("Content-Length", str(len(payload))),
            ("X-Request-ID", request_id),
        ],
    )
    metrics.http_request_observe(method="POST", route=ROUTE, status=status, seconds=time.perf_counter() - started)
    _request_finished()
    return [payload]


# Django's own receivers of the request signals (django.db, django.core.cache, the handler).
_DJANGO_RECEIVERS = {
    signals.request_started: {reset_queries, close_old_connections},
    signals.request_finished: {close_old_connections, close_caches, reset_urlconf},
}
_checked_receivers: dict = {}  # signal → the receiver list last found to hold Django's own only


def _request_started(environ: dict) -> None:
    if _only_django_receivers(signals.request_started):
        for connection in connections.all(initialized_only=True):
            connection.queries_log.clear()  # reset_queries
            connection.close_if_unusable_or_obsolete()  # close_old_connections
    else:
        signals.request_started.send(sender=WSGIHandler, environ=environ)


def _request_finished() -> None:
    if _only_django_receivers(signals.request_finished) and _caches_close_nothing(
        tuple(config["BACKEND"] for config in settings.CACHES.values())
    ):
        for connection in connections.all(initialized_only=True):
            connection.close_if_unusable_or_obsolete()  # close_old_connections
        # close_caches: every configured backend's close() does nothing. reset_urlconf: the door
        # sets no URLconf, and Django's handler resets the one it sets when its request ends.
    else:
        signals.request_finished.send(sender=WSGIHandler)


def _only_django_receivers(signal) -> bool:
    """Whether Django's own receivers are the only ones connected to ``signal``, for any sender."""
    if _checked_receivers.get(signal) == signal.receivers:  # the list last checked: compared, not resolved
        return True
    receivers = list(signal.receivers)  # a copy: another thread may connect or disconnect meanwhile
    live = set()
    try:
        for (_, sender_key), receiver, _ in receivers:  # Django's (lookup key, receiver, is_async)
            receiver = receiver() if isinstance(receiver, weakref.ReferenceType) else receiver
            if receiver is not None:
                if sender_key != id(None):
                    return False
                live.add(receiver)
    except (TypeError, ValueError):  # a Django whose list has another shape: send the signal
        return False
    if live != _DJANGO_RECEIVERS[signal]:
        return False
    _checked_receivers[signal] = receivers
    return True


@functools.lru_cache(maxsize=8)
def _caches_close_nothing(backends: tuple[str, ...]) -> bool:
    """Whether closing each of these cache backends is a no-op (Redis and local memory: yes)."""
    return all(import_string(backend).close is BaseCache.close for backend in backends)


class _HandOver(Exception):
    """Not for this door: the Django path answers."""


def _hand_over(environ: dict, start_response, fallback, body: bytes) -> list[bytes]:
    environ["wsgi.input"] = io.BytesIO(body)
    return fallback(environ, start_response)


def _admitted(environ: dict) -> bool:
    """The view's rate limits, counted as DRF counts them for an anonymous caller."""
    request = SimpleNamespace(META=environ, user=_ANONYMOUS)
    return all(throttle().allow_request(request, None) for throttle in ClassifyView.throttle_classes)


def _is_secure(environ: dict) -> bool:
    """HttpRequest.scheme's rule: the proxy's header when configured and sent, else the server's scheme."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = environ.get(header)
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return environ.get("wsgi.url_scheme") == "https"


def _host_allowed(environ: dict) -> bool:
    """Django's Host check (ALLOWED_HOSTS), remembered per distinct Host for this process."""
    key = tuple(environ.get(name) for name in ("HTTP_X_FORWARDED_HOST", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT"))
    allowed = _known_hosts.get(key)
    if allowed is None:
        try:
            WSGIRequest({**environ, "wsgi.input": io.BytesIO()}).get_host()
            allowed = True
        except DisallowedHost:
            allowed = False
        if len(_known_hosts) > 1000:
            _known_hosts.clear()
        _known_hosts[key] = allowed
    return allowed


@functools.cache
def _added_headers(secure: bool) -> tuple[tuple[str, str], ...]:
    """What Django's security and clickjacking middleware add to a JSON answer, with these settings."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": PREFIX + "x",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "443" if secure else "80",
        "wsgi.url_scheme": "https" if secure else "http",
        "wsgi.input": io.BytesIO(),
    }
    request = WSGIRequest(environ)
    request.is_secure = lambda: secure
    response = SecurityMiddleware(XFrameOptionsMiddleware(lambda _: HttpResponse(content_type="application/json")))(
        request
    )
    return tuple((header, value) for header, value in response.items() if header != "Content-Type")
