"""Query filters of the API v1 list endpoints (django-filter)."""

from __future__ import annotations

from django import forms
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema_field

from classifier.encoding import SPECIES, SPECIES_BY_NAME
from classifier.models import MLModel, ModelVersion, Prediction
from training.models import TrainingRun

SPECIES_HELP = "Species id (1=Adelie, 2=Chinstrap, 3=Gentoo) or name, any case."


class SpeciesField(forms.Field):
    """A species given as its id or its name; cleans to the id."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value).strip()
        if text.isdigit() and int(text) in SPECIES:
            return int(text)
        code = SPECIES_BY_NAME.get(text.lower())
        if code is None:
            raise forms.ValidationError(f"Unknown species {text[:40]!r}; use 1, 2, 3 or Adelie, Chinstrap, Gentoo.")
        return code


@extend_schema_field({"type": "string", "description": SPECIES_HELP, "example": "Gentoo"})
class SpeciesFilter(filters.Filter):
    field_class = SpeciesField


class IntegerFilter(filters.NumberFilter):
    field_class = forms.IntegerField


class ModelFilter(filters.FilterSet):
    algorithm = filters.CharFilter(help_text="Catalogue algorithm, e.g. knn.")

    class Meta:
        model = MLModel
        fields = ["algorithm"]


class ModelVersionFilter(filters.FilterSet):
    source = filters.ChoiceFilter(choices=ModelVersion.Source.choices, help_text="trained or discovered.")

    class Meta:
        model = ModelVersion
        fields = ["source"]


class PredictionFilter(filters.FilterSet):
    model = filters.CharFilter(field_name="model__name", help_text="Model name.")
    version = IntegerFilter(field_name="version__number", help_text="Version number (best with ?model=).")
    species = SpeciesFilter(field_name="species_id", help_text=f"Predicted species. {SPECIES_HELP}")
    true_species = SpeciesFilter(field_name="true_species_id", help_text=f"Species from feedback. {SPECIES_HELP}")
    has_feedback = filters.BooleanFilter(
        field_name="true_species_id",
        lookup_expr="isnull",
        exclude=True,
        help_text="Only rows with (or without) feedback.",
    )
    endpoint = filters.ChoiceFilter(choices=Prediction.Endpoint.choices, help_text="Which door answered.")
    created_after = filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601 time; rows at or after it."
    )
    created_before = filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="ISO 8601 time; rows strictly before it."
    )

    class Meta:
        model = Prediction
        fields: list[str] = []


class TrainingRunFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=TrainingRun.Status.choices, help_text="queued, running, succeeded, failed.")
    model = filters.CharFilter(field_name="model_name", help_text="Model name.")
    algorithm = filters.CharFilter(help_text="Catalogue algorithm.")
    trigger = filters.ChoiceFilter(choices=TrainingRun.Trigger.choices, help_text="Who asked: admin, api, command.")

    class Meta:
        model = TrainingRun
        fields: list[str] = []
