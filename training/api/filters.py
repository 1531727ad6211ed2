"""Filters of the training-run list."""

from __future__ import annotations

from django_filters import rest_framework as filters

from core.api.filters import StrictFilterSet, TextFilter
from training.models import TrainingRun


class TrainingRunFilter(StrictFilterSet):
    status = filters.ChoiceFilter(choices=TrainingRun.Status.choices, help_text="queued, running, succeeded, failed.")
    model = TextFilter(field_name="model_name", help_text="Model name.")
    algorithm = TextFilter(help_text="Catalogue algorithm.")
    trigger = filters.ChoiceFilter(choices=TrainingRun.Trigger.choices, help_text="Who asked: admin, api, command.")

    class Meta:
        model = TrainingRun
        fields: list[str] = []
