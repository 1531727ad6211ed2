"""JSON errors everywhere: DRF's exception handler and Django's error views.

Every error body has the same shape: ``{"detail": "...", "code": "...", "errors": {...}}``
where ``errors`` (validation only) maps each field, or ``instances[i].field``, to messages.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, DataError
from django.http import Http404, JsonResponse, UnreadablePostError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from classifier.encoding import InputError
from classifier.services import ModelBroken, ModelNotFound, NoProbabilities, RegistryError
from training.catalogue import ParamError

logger = logging.getLogger(__name__)


def body_limit_message() -> str:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return f"Request body larger than {limit} bytes; send fewer rows per request (limit: PENGUIN_MAX_BODY_BYTES)."


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The service is temporarily unavailable; try again shortly."
    default_code = "unavailable"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


STORAGE_UNAVAILABLE = "The model files cannot be read right now; nothing was recorded. Try again shortly."
BODY_INCOMPLETE = (
    "The request body stopped arriving before it was complete (GUNICORN_REQUEST_READ_TIMEOUT); "
    "nothing was recorded. Send the whole body at once."
)


class FailureStreak:
    """Logs an outage without flooding the log: the first failure of a streak with its
    traceback, then one line per failure with the count so far.

    A streak ends once ``quiet_seconds`` pass without a failure; the next one starts a new
    streak (and logs its traceback again). Counted per process.
    """

    def __init__(self, what: str, quiet_seconds: float = 60.0) -> None:
        self.what = what
        self.quiet_seconds = quiet_seconds
        self._lock = threading.Lock()
        self._count = 0
        self._first = self._last = 0.0

    def failed(self, exc: BaseException, path: str) -> None:
        with self._lock:
            now = time.monotonic()
            if self._count == 0 or now - self._last > self.quiet_seconds:
                self._count, self._first = 0, now
            self._count += 1
            self._last = now
            count, since = self._count, now - self._first
        if count == 1:
            logger.error("%s while serving %s", self.what, path, exc_info=exc)
        else:
            logger.error(
                "%s while serving %s: failure %d in a row in this process over %.0fs (traceback logged with the "
                "first): %s: %s",
                self.what,
                path,
                count,
                since,
                type(exc).__name__,
                str(exc).strip().splitlines()[0] if str(exc).strip() else "",
            )


DATABASE_FAILURES = FailureStreak("database error")
STORAGE_FAILURES = FailureStreak("storage error")


def error_body(detail: str, code: str, errors: dict | None = None) -> dict:
    body = {"detail": detail, "code": code}
    if errors:
        body["errors"] = errors
    return body


# Domain errors raised by services → (HTTP status, code).
DOMAIN_ERRORS: list[tuple[type[Exception], int, str]] = [
    (ModelNotFound, 404, "model_not_found"),
    (ModelBroken, 409, "model_unavailable"),
    (NoProbabilities, 409, "no_probabilities"),
    (RegistryError, 409, "conflict"),
]


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, InputError):
        return Response(error_body("Invalid input.", "invalid", exc.errors), status=400)
    if isinstance(exc, ParamError):
        return Response(error_body(str(exc), "invalid", {exc.field: [str(exc)]}), status=400)
    for cls, status_code, code in DOMAIN_ERRORS:
        if isinstance(exc, cls):
            return Response(error_body(str(exc), code), status=status_code)
    if isinstance(exc, DataError):
        # A value the database cannot store (beyond a column's range, say): the request's fault.
        logger.warning("data error while serving %s: %s", context.get("request") and context["request"].path, exc)
        return Response(error_body("A value in the request cannot be stored; check its range.", "invalid"), status=400)
    if isinstance(exc, DatabaseError):
        DATABASE_FAILURES.failed(exc, _path(context))
        return Response(
            error_body("The database is unavailable; nothing was recorded. Try again shortly.", "database_unavailable"),
            status=503,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, UnreadablePostError):
        # The client stalled or went away mid-body: its fault, not the storage's.
        logger.warning("request body of %s not received: %s", context.get("request") and context["request"].path, exc)
        return Response(error_body(BODY_INCOMPLETE, "body_incomplete"), status=400)
    if isinstance(exc, OSError):
        # The artifacts folder is unreadable (unmounted, not a folder, I/O error): a fault of
        # the server's storage, not of the request. The path stays in the log, out of the body.
        STORAGE_FAILURES.failed(exc, _path(context))
        return Response(
            error_body(STORAGE_UNAVAILABLE, "storage_unavailable"), status=503, headers={"Retry-After": "5"}
        )
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(body_limit_message())
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = data if isinstance(data, dict) else {"non_field_errors": data}
        response.data = error_body("Invalid input.", "invalid", errors)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else str(data)
        codes = exc.get_codes()
        response.data = error_body(str(detail), codes if isinstance(codes, str) else exc.default_code)
    return response


def _path(context: dict) -> str:
    request = context.get("request")
    return request.path if request is not None else "?"


def _json(status_code: int, detail: str, code: str) -> JsonResponse:
    return JsonResponse(error_body(detail, code), status=status_code)


def bad_request(request, exception=None):
    return _json(400, "Bad request.", "bad_request")


def permission_denied(request, exception=None):
    return _json(403, "You do not have permission to perform this action.", "permission_denied")


def not_found(request, exception=None):
    return _json(404, "Not found. The API is described at /api/docs/ (GET /models lists models).", "not_found")


def server_error(request):
    return _json(500, "Internal error; it has been logged.", "server_error")
