"""Query filters of the API v1 list endpoints (django-filter)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django import forms
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from classifier.encoding import SPECIES_BY_NAME
from classifier.models import MLModel, ModelVersion, Prediction
from training.models import TrainingRun

SPECIES_HELP = "Species id (1=Adelie, 2=Chinstrap, 3=Gentoo) or name, any case."
SPECIES_PATTERN = (
    "^(?:[123]|"
    + "|".join("".join(f"[{char.lower()}{char.upper()}]" for char in name) for name in SPECIES_BY_NAME)
    + ")$"
)
NO_NUL_PATTERN = "^[^\\x00]*$"

# Every filter accepts exactly what the schema documents for it (schemathesis checks both
# ways): no stripped spaces, no "1.0" for an integer, no "yes" for a boolean.


class SpeciesField(forms.Field):
    """A species given as its id or its name; cleans to the id."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value)
        if not re.fullmatch(SPECIES_PATTERN, text):
            # The value goes in params: django-filter formats the message with %, and a
            # value holding "%" must not be read as a format.
            raise forms.ValidationError(
                "Unknown species %(value)s; use 1, 2, 3 or Adelie, Chinstrap, Gentoo.",
                params={"value": repr(text[:40])},
            )
        return int(text) if text.isdigit() else SPECIES_BY_NAME[text.lower()]


@extend_schema_field({"type": "string", "pattern": SPECIES_PATTERN, "description": SPECIES_HELP, "example": "Gentoo"})
class SpeciesFilter(filters.Filter):
    field_class = SpeciesField


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
    """An ISO 8601 time, turned into UTC before it reaches the database.

    PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows (``+19:09``). An instant
    that Python cannot hold in UTC (year 1 at +10:00 is still year 0 in UTC) lies before or
    after every row, so it becomes the earliest or latest time there is.
    """

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)


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


class ModelFilter(StrictFilterSet):
    algorithm = TextFilter(help_text="Catalogue algorithm, e.g. knn.")

    class Meta:
        model = MLModel
        fields = ["algorithm"]


class ModelVersionFilter(StrictFilterSet):
    source = filters.ChoiceFilter(choices=ModelVersion.Source.choices, help_text="trained or discovered.")

    class Meta:
        model = ModelVersion
        fields = ["source"]


class PredictionFilter(StrictFilterSet):
    model = TextFilter(field_name="model__name", help_text="Model name.")
    version = IntegerFilter(field_name="version__number", help_text="Version number (best with ?model=).")
    species = SpeciesFilter(field_name="species_id", help_text=f"Predicted species. {SPECIES_HELP}")
    true_species = SpeciesFilter(field_name="true_species_id", help_text=f"Species from feedback. {SPECIES_HELP}")
    has_feedback = BooleanFilter(
        field_name="true_species_id",
        lookup_expr="isnull",
        exclude=True,
        help_text="Only rows with (or without) feedback.",
    )
    endpoint = filters.ChoiceFilter(choices=Prediction.Endpoint.choices, help_text="Which door answered.")
    created_after = IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601 time; rows at or after it."
    )
    created_before = IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="ISO 8601 time; rows strictly before it."
    )

    class Meta:
        model = Prediction
        fields: list[str] = []


class TrainingRunFilter(StrictFilterSet):
    status = filters.ChoiceFilter(choices=TrainingRun.Status.choices, help_text="queued, running, succeeded, failed.")
    model = TextFilter(field_name="model_name", help_text="Model name.")
    algorithm = TextFilter(help_text="Catalogue algorithm.")
    trigger = filters.ChoiceFilter(choices=TrainingRun.Trigger.choices, help_text="Who asked: admin, api, command.")

    class Meta:
        model = TrainingRun
        fields: list[str] = []
