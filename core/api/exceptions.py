"""The API's own HTTP errors (413, 503, 409) and the shape of every error body.

Every error body has the same shape: ``{"detail": "...", "code": "...", "errors": {...}}``
where ``errors`` (validation only) maps each field, or ``instances[i].field``, to messages.
Kept apart from the handler (``core.api.handlers``): the parsers import these, and DRF's
views import the parsers.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import exceptions, status


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


def error_body(detail: str, code: str, errors: dict | None = None) -> dict:
    body = {"detail": detail, "code": code}
    if errors:
        body["errors"] = errors
    return body
