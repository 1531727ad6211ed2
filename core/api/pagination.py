"""Cursor pagination for append-only lists (the prediction log, training runs)."""

from __future__ import annotations

import re

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    """Newest first by id; ``?cursor=`` pages stay stable while rows are being added."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request) -> int:
        """``?page_size=`` from 1 to max_page_size; anything else is a 400, not silently the default."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if re.fullmatch(r"[0-9]{1,4}", raw) and 1 <= int(raw) <= self.max_page_size:
            return int(raw)
        raise ValidationError(
            {self.page_size_query_param: [f"Expected a whole number from 1 to {self.max_page_size}; got {raw[:20]!r}."]}
        )

    def decode_cursor(self, request) -> Cursor | None:
        """DRF's decoding, plus: the position must be a whole number (it is compared with ids).

        A cursor whose position is not one (``p=abc``) is refused like any other cursor that
        is not one of ours: 404 "Invalid cursor" (the documented answer), never a 500 from
        the query it would reach.
        """
        decoded = super().decode_cursor(request)
        if decoded is not None and decoded.position is not None:
            if not re.fullmatch(r"[0-9]{1,18}", decoded.position):
                raise NotFound(self.invalid_cursor_message)
        return decoded

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_page_size})
        return parameters
