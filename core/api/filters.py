"""Filter plumbing every API list shares: strict parsing, exactly what the schema documents.

Every filter accepts exactly what the schema documents for it (schemathesis checks both
ways): no stripped spaces, no "1.0" for an integer, no "yes" for a boolean.
"""

from __future__ import annotations

import re

from django import forms
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from core.times import as_utc

NO_NUL_PATTERN = "^[^\\x00]*$"

MAX_VERSION = 2**31 - 1


class VersionNumberField(forms.IntegerField):
    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=MAX_VERSION, **kwargs)

    def to_python(self, value):
        if value not in self.empty_values and not re.fullmatch(r"[0-9]{1,10}", str(value)):
            raise forms.ValidationError("Enter a version number such as 3.", code="invalid")
        return super().to_python(value)


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_VERSION})
class IntegerFilter(filters.NumberFilter):
    field_class = VersionNumberField


class StrictBooleanField(forms.Field):
    widget = forms.TextInput  # the default select widget would turn any text into true/false/None

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if value not in {"true", "false"}:
            raise forms.ValidationError("Enter true or false.", code="invalid")
        return value == "true"


class BooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField

    def __init__(self, *args, **kwargs):
        # DRF's BooleanFilter defaults to BooleanWidget, which turns "true" into True (and
        # "yes" into None) before the field sees it: hand the field the text as sent.
        kwargs.setdefault("widget", forms.TextInput)
        super().__init__(*args, **kwargs)


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, turned into UTC before it reaches the database (see ``as_utc``)."""

    def to_python(self, value):
        value = super().to_python(value)
        return None if value is None else as_utc(value)


class IsoDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


@extend_schema_field({"type": "string", "pattern": NO_NUL_PATTERN})
class TextFilter(filters.CharFilter):
    """Free text; a NUL character (PostgreSQL cannot compare one) is refused by the form field."""


class StrictFilterSet(filters.FilterSet):
    """A parameter given without a value (``?source=``) is an error, not "no filter"; free text aside."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name, filter_ in self.filters.items():
            if isinstance(filter_, TextFilter) or name not in self.data:
                continue
            if any(value == "" for value in self.data.getlist(name)):
                self.form.add_error(name, "Give a value, or leave the parameter out.")
                valid = False
        return valid
