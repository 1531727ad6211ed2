"""The JSON parser every endpoint uses: size-bounded, strict, and forgiving of headers."""

from __future__ import annotations

import json

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .exceptions import PayloadTooLarge, body_limit_message


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def json_body_load(data: bytes, *, numbers_only: bool = False) -> object:
    """A body read by ``read_bounded`` as JSON: 400 if it is not JSON, ``{}`` when blank.

    ``numbers_only``: the body holds penguins, whose numbers are checked against their bounds
    anyway, so orjson may read it (a penguin in a quarter of json's time; it reads an integer
    past 64 bits as a float, which fails the same bound). What orjson refuses is read again
    by json, which words the error the way clients have seen it.
    """
    if numbers_only:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    if not data.strip():
        return {}
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ParseError(f"Body is not valid JSON: {str(exc)[:200]}.") from None
    except RecursionError:
        # json's decoder recurses on Python's stack, so how deep it can go depends on the
        # caller; orjson's own limit (1,024 levels) does not. A body it reads reaches the
        # serializers, which name the field that is nested too deeply.
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"Body is not valid JSON: {str(exc)[:200]}.") from None


class BoundedJSONParser(JSONParser):
    """Parses JSON without ever reading more than the configured body limit.

    NaN/Infinity literals, invalid UTF-8 and absurd nesting are parse errors (400), and a
    body over ``PENGUIN_MAX_BODY_BYTES`` is refused with 413 before it is read.
    """

    @staticmethod
    def read_bounded(stream, meta) -> bytes:
        """The body's bytes; 413 when it is (or says it is) over the limit, before reading it."""
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            declared = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise PayloadTooLarge(body_limit_message())
        data = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise PayloadTooLarge(body_limit_message())
        return data

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        return json_body_load(self.read_bounded(stream, request.META if request is not None else {}))


class AnyContentTypeJSONParser(BoundedJSONParser):
    """Clients of the earlier service sometimes omit Content-Type; read their body as JSON too."""

    media_type = "*/*"
