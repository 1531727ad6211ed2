"""Training-run API shapes: the request that starts a run, and the run as it is polled."""

from __future__ import annotations

from rest_framework import serializers

from classifier.models import model_name_validator
from core.api.serializers import StrictCharField, StrictFloatField, StrictIntegerField
from training.catalogue import CATALOGUE
from training.holdout import DEFAULT_SPLIT_SEED
from training.models import ActivationMode, TrainingRun
from training.services.runs import LEGACY_ACTIVATION, MAX_SEED


class TrainingRunCreateSerializer(serializers.Serializer):
    algorithm = serializers.ChoiceField(
        choices=list(CATALOGUE),
        help_text="Catalogue algorithm.",
        error_messages={"invalid_choice": f'Unknown algorithm "{{input}}"; choose one of {", ".join(CATALOGUE)}.'},
    )
    params = serializers.DictField(
        required=False, default=dict, help_text='Estimator parameters, e.g. {"n_neighbors": 7}.'
    )
    name = StrictCharField(
        required=False,
        allow_null=True,
        max_length=64,
        validators=[model_name_validator],
        help_text="Model name; defaults to the algorithm's name.",
    )
    test_size = StrictFloatField(
        required=False, default=0.2, min_value=0.05, max_value=0.5, help_text="Held-out share, 0.05 to 0.5."
    )
    seed = StrictIntegerField(
        required=False, default=42, min_value=0, max_value=MAX_SEED, help_text="The estimator's seed only."
    )
    split_seed = StrictIntegerField(
        required=False,
        default=DEFAULT_SPLIT_SEED,
        min_value=0,
        max_value=MAX_SEED,
        help_text="Decides, with the data, which rows are held out; another value changes the test rows.",
    )
    activate = serializers.ChoiceField(
        choices=[*ActivationMode.values, *LEGACY_ACTIVATION],
        required=False,
        default=ActivationMode.NOT_WORSE,
        help_text=(
            "Whether the new version replaces the champion, both scored on the same held-out rows: not_worse "
            "(unless significantly worse, exact McNemar p <= 0.05), better (only if significantly better), "
            "force, never. policy is the old name of not_worse."
        ),
    )


class TrainingRunSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(
        source="version.number", read_only=True, allow_null=True, help_text="The version it produced."
    )
    triggered_by = serializers.CharField(source="triggered_by.username", read_only=True, allow_null=True)

    class Meta:
        model = TrainingRun
        fields = [
            "id", "status", "model_name", "algorithm", "params", "test_size", "seed", "split_seed", "activation",
            "error", "queued_at", "started_at", "finished_at", "duration_seconds", "attempts", "version", "identical",
            "activated", "activation_note", "trigger", "triggered_by",
        ]  # fmt: skip
        read_only_fields = fields
