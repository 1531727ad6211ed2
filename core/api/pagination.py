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

    invalid_cursor_message = "Invalid cursor: take it from a page's next or previous link."

    def decode_cursor(self, request) -> Cursor | None:
        """DRF's decoding, plus: the position must be a whole number (it is compared with ids).

        Every cursor that is not one of ours is a 400 naming ``cursor`` (DRF answers 404), and
        one whose position is not a whole number (``p=abc``) never reaches the query.
        """
        try:
            decoded = super().decode_cursor(request)
        except NotFound:
            decoded = None
            valid = False
        else:
            valid = decoded is None or decoded.position is None or re.fullmatch(r"[0-9]{1,18}", decoded.position)
        if not valid:
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]}, code="invalid_cursor")
        return decoded

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_page_size})
        return parameters
