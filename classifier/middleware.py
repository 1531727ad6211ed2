"""Errors outside DRF views still answer in JSON."""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import JsonResponse

logger = logging.getLogger(__name__)


class JsonErrorMiddleware:
    """Turns a lost database into 503 JSON (not a 500 page) and big bodies into 413."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, DatabaseError):
            logger.error("database error on %s: %s", request.path, exception)
            response = JsonResponse(
                {"detail": "The database is unavailable; try again shortly.", "code": "database_unavailable"},
                status=503,
            )
            response["Retry-After"] = "5"
            return response
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse({"detail": "Request body too large.", "code": "payload_too_large"}, status=413)
        return None
