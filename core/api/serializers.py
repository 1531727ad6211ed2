"""Serializers every API shares: the error body, and request fields that take JSON as it is."""

from __future__ import annotations

from rest_framework import serializers

from core.times import as_utc


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong and how to fix it.")
    code = serializers.CharField(help_text="Machine-readable error code.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per-field messages (validation errors only); batch rows appear as instances[i].field.",
    )


class StrictCharField(serializers.CharField):
    """A JSON string only, kept as sent: a number or a boolean is refused, not turned into text,
    and surrounding spaces are not trimmed (so ``maxLength`` means what the schema says)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A JSON number only: a numeric string or a boolean is refused."""

    def to_internal_value(self, data):
        if isinstance(data, str | bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: a string, a boolean or 42.0 is refused."""

    def to_internal_value(self, data):
        if isinstance(data, str | bool | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class UtcDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time as the database can compare it: in UTC, clamped where UTC cannot hold it."""

    def enforce_timezone(self, value):
        return as_utc(value)
