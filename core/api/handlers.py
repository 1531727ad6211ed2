"""JSON errors everywhere: DRF's exception handler and Django's error views."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, DataError
from django.http import Http404, JsonResponse, UnreadablePostError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.encoding import InputError
from core.errors import (
    BODY_INCOMPLETE,
    DATABASE_FAILURES,
    DATABASE_UNAVAILABLE,
    STORAGE_FAILURES,
    STORAGE_UNAVAILABLE,
    DomainError,
)

from .exceptions import PayloadTooLarge, body_limit_message, error_body

logger = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, InputError):
        return Response(error_body("Invalid input.", "invalid", exc.errors), status=400)
    if isinstance(exc, DomainError):
        # A service's refusal: its class says the status and code; a named field gets its message.
        errors = {exc.field: [str(exc)]} if exc.field else None
        return Response(error_body(str(exc), exc.code, errors), status=exc.status_code)
    if isinstance(exc, DataError):
        # A value the database cannot store (beyond a column's range, say): the request's fault.
        logger.warning("data error while serving %s: %s", context.get("request") and context["request"].path, exc)
        return Response(error_body("A value in the request cannot be stored; check its range.", "invalid"), status=400)
    if isinstance(exc, DatabaseError):
        DATABASE_FAILURES.failed(exc, _path(context))
        return Response(
            error_body(DATABASE_UNAVAILABLE, "database_unavailable"),
            status=503,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, UnreadablePostError):
        # The client stalled or went away mid-body: its fault, not the storage's.
        logger.warning("request body of %s not received: %s", _path(context), exc)
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
