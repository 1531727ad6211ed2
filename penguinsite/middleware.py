"""Request middleware: JSON errors outside DRF views, request ids, request metrics."""

from __future__ import annotations

import logging
import os
import re
import time

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import JsonResponse, UnreadablePostError

from classifier import metrics
from core.api.exceptions import body_limit_message
from core.api.handlers import not_found
from core.errors import (
    BODY_INCOMPLETE,
    DATABASE_FAILURES,
    DATABASE_UNAVAILABLE,
    STORAGE_FAILURES,
    STORAGE_UNAVAILABLE,
)

from .logs import request_id_bound

logger = logging.getLogger(__name__)


class JsonErrorMiddleware:
    """Turns a lost database or artifacts folder into 503 JSON (not a 500 page) and big bodies into 413."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path:
            # No name or id contains NUL, and PostgreSQL refuses to compare a string holding
            # one (a ValueError, not a miss): such a path names nothing.
            return not_found(request)
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            # The WSGI server hands a chunked body over without a length, and Django then reads
            # it as empty: an activation would succeed without its reason. Ask for a length.
            return JsonResponse(
                {
                    "detail": "Send the body with a Content-Length header; chunked transfer encoding is not accepted.",
                    "code": "length_required",
                },
                status=411,
            )
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, DatabaseError):
            DATABASE_FAILURES.failed(exception, request.path)
            response = JsonResponse(
                {"detail": DATABASE_UNAVAILABLE, "code": "database_unavailable"},
                status=503,
            )
            response["Retry-After"] = "5"
            return response
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse({"detail": body_limit_message(), "code": "payload_too_large"}, status=413)
        if isinstance(exception, UnreadablePostError):
            logger.warning("request body of %s not received: %s", request.path, exception)
            return JsonResponse({"detail": BODY_INCOMPLETE, "code": "body_incomplete"}, status=400)
        if isinstance(exception, OSError):
            STORAGE_FAILURES.failed(exception, request.path)
            response = JsonResponse(
                {"detail": STORAGE_UNAVAILABLE, "code": "storage_unavailable"},
                status=503,
            )
            response["Retry-After"] = "5"
            return response
        return None


# A client may name its request (X-Request-ID) so its logs line up with ours; anything
# odd (too long, spaces, quotes, control characters) is replaced by a fresh id.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")


def request_id_for(supplied: str) -> str:
    """The client's X-Request-ID when sane, else a fresh id: a random UUID (version 4) as 32
    hex digits, made from the random bytes directly (uuid.uuid4().hex costs three times as much)."""
    if SANE_REQUEST_ID.fullmatch(supplied):
        return supplied
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class RequestIdMiddleware:
    """Gives every request an id: in ``request.request_id``, every log line, and ``X-Request-ID``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # META, not request.headers: building the headers mapping costs more than the rest of this.
        supplied = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = request_id_for(supplied)
        request.request_id = request_id
        with request_id_bound(request_id):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class RequestMetricsMiddleware:
    """Counts requests and times them, labelled by URL pattern (not path: bounded labels)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        metrics.http_request_observe(
            method=request.method if request.method in _METHODS else "other",
            route=f"/{match.route}" if match is not None else "unmatched",
            status=response.status_code,
            seconds=time.perf_counter() - started,
        )
        return response
