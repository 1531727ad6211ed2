"""Serializers: response shapes, and request shapes for the OpenAPI schema.

Penguin inputs are validated by ``core.encoding`` (vectorised, one rule set for
every door); the input serializers below exist to describe those rules in the schema.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from classifier.models import MLModel, ModelActivation, ModelVersion, Prediction
from classifier.selectors import version_live_accuracy
from core.api.serializers import StrictCharField, StrictIntegerField
from core.encoding import ISLANDS, RULES, SEXES, SPECIES, SPECIES_BY_NAME, SPECIES_NAMES


def _any_case(word: str) -> str:
    return "".join(f"[{char.lower()}{char.upper()}]" if char.isalpha() else char for char in word)


def _code_or_name(field: str, names: dict[int, str]) -> dict:
    rule = RULES[field]
    pattern = "^(?:" + "|".join(_any_case(name) for name in names.values()) + ")$"
    described = ", ".join(f"{code}={name}" for code, name in names.items())
    return {
        "oneOf": [
            {"type": "integer", "minimum": int(rule.minimum), "maximum": int(rule.maximum)},
            {"type": "string", "pattern": pattern},
        ],
        "description": f"{described}; the code or the name, in any case.",
        "example": next(iter(names)),
    }


def _bounds(field: str) -> dict:
    """The schema's bounds of a measured field: the encoding's own rule (whole numbers stay whole)."""
    rule = RULES[field]
    if rule.integral:
        return {"min_value": int(rule.minimum), "max_value": int(rule.maximum)}
    return {"min_value": float(rule.minimum), "max_value": float(rule.maximum)}


@extend_schema_field(_code_or_name("island", ISLANDS))
class IslandField(serializers.Field):
    pass


@extend_schema_field(_code_or_name("sex", SEXES))
class SexField(serializers.Field):
    pass


class PenguinSerializer(serializers.Serializer):
    """One penguin: all seven fields are required."""

    island = IslandField(help_text="1=Torgersen, 2=Biscoe, 3=Dream, or the name.")
    bill_length_mm = serializers.FloatField(**_bounds("bill_length_mm"), help_text="Bill length, mm.")
    bill_depth_mm = serializers.FloatField(**_bounds("bill_depth_mm"), help_text="Bill depth, mm.")
    flipper_length_mm = serializers.FloatField(**_bounds("flipper_length_mm"), help_text="Flipper length, mm.")
    body_mass_g = serializers.FloatField(**_bounds("body_mass_g"), help_text="Body mass, g.")
    sex = SexField(help_text="0=female, 1=male, or the name.")
    year = serializers.IntegerField(**_bounds("year"), help_text="Year of observation.")


class CompatMetricsSerializer(serializers.Serializer):
    train_accuracy = serializers.FloatField(allow_null=True)
    test_accuracy = serializers.FloatField(allow_null=True)
    test_precision = serializers.FloatField(allow_null=True)
    test_recall = serializers.FloatField(allow_null=True)
    test_f1 = serializers.FloatField(allow_null=True)


class CompatModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    endpoint = serializers.CharField(help_text='"POST /classify/<name>"')
    metrics = CompatMetricsSerializer()
    status = serializers.ChoiceField(choices=["ready", "broken"], help_text="broken: the model cannot serve.")
    version = serializers.IntegerField(help_text="The active version's number.")
    error = serializers.CharField(required=False, help_text="Why a broken model cannot serve.")


class CompatModelsSerializer(serializers.Serializer):
    available_models = CompatModelSerializer(many=True)


class CompatClassifySerializer(serializers.Serializer):
    model = serializers.CharField()
    species_id = serializers.IntegerField(help_text="1=Adelie, 2=Chinstrap, 3=Gentoo.")
    species_name = serializers.ChoiceField(choices=SPECIES_NAMES)


# --- API v1 ------------------------------------------------------------------------------------

SPECIES_NAME_PATTERN = "^(?:" + "|".join(_any_case(name) for name in SPECIES_NAMES) + ")$"


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 1, "maximum": 3},
            {"type": "string", "pattern": SPECIES_NAME_PATTERN},
        ],
        "description": "1=Adelie, 2=Chinstrap, 3=Gentoo; the id or the name, in any case.",
        "example": 3,
    }
)
class SpeciesField(serializers.Field):
    """A species given as its id (1-3) or its name in any case; the internal value is the id."""

    default_error_messages = {
        "invalid": "Unknown species {value}; use 1 (Adelie), 2 (Chinstrap), 3 (Gentoo) or the name.",
    }

    def to_internal_value(self, data):
        # Exactly what the schema documents: the id as a JSON number, or the name as a string.
        if isinstance(data, str):
            code = SPECIES_BY_NAME[data.lower()] if re.fullmatch(SPECIES_NAME_PATTERN, data) else None
        elif isinstance(data, int) and not isinstance(data, bool) and data in SPECIES:
            code = data
        else:
            code = None
        if code is None:
            self.fail("invalid", value=repr(data)[:40])
        return code

    def to_representation(self, value):
        return value


class ProbabilitiesSerializer(serializers.Serializer):
    """Probability of each species; they sum to 1 (rounded to 6 decimals)."""

    Adelie = serializers.FloatField(min_value=0.0, max_value=1.0)
    Chinstrap = serializers.FloatField(min_value=0.0, max_value=1.0)
    Gentoo = serializers.FloatField(min_value=0.0, max_value=1.0)


class PenguinOutputSerializer(serializers.Serializer):
    """A logged input, in codes: island 1-3, sex 0/1."""

    island = serializers.IntegerField(help_text="1=Torgersen, 2=Biscoe, 3=Dream.")
    bill_length_mm = serializers.FloatField()
    bill_depth_mm = serializers.FloatField()
    flipper_length_mm = serializers.FloatField()
    body_mass_g = serializers.FloatField()
    sex = serializers.IntegerField(help_text="0=female, 1=male.")
    year = serializers.IntegerField()


class LiveAccuracySerializer(serializers.Serializer):
    labelled = serializers.IntegerField(help_text="Predictions of this version with feedback.")
    correct = serializers.IntegerField(help_text="Of those, how many named the true species.")
    accuracy = serializers.FloatField(allow_null=True, help_text="correct / labelled; null before any feedback.")


class VersionSummarySerializer(serializers.ModelSerializer):
    """The version a model serves, as shown inside the model."""

    status = serializers.ChoiceField(choices=["active", "inactive", "broken"], read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["number", "status", "source", "algorithm", "estimator", "runtime", "metrics", "sha256", "created_at"]


class MLModelSerializer(serializers.ModelSerializer):
    active_version = VersionSummarySerializer(
        allow_null=True, read_only=True, help_text="The version that serves; null when none can."
    )
    version_count = serializers.IntegerField(read_only=True, help_text="How many versions the model has.")
    predict_endpoint = serializers.SerializerMethodField(help_text="Where to score with it.")

    class Meta:
        model = MLModel
        fields = [
            "name",
            "algorithm",
            "description",
            "active_version",
            "version_count",
            "predict_endpoint",
            "created_at",
            "updated_at",
        ]

    def get_predict_endpoint(self, model: MLModel) -> str:
        return f"POST /api/v1/models/{model.name}/predict"


class VersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    status = serializers.ChoiceField(
        choices=["active", "inactive", "broken"],
        read_only=True,
        help_text="active: the model serves it; broken: it cannot serve (see broken_reason).",
    )
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True)
    live_accuracy = serializers.SerializerMethodField(help_text="Accuracy against the feedback received so far.")

    class Meta:
        model = ModelVersion
        fields = [
            "model", "number", "status", "source", "algorithm", "estimator", "params", "metrics",
            "sha256", "size_bytes", "artifact_path", "runtime", "runtime_reason", "classes", "feature_names",
            "library_versions", "dataset", "n_train", "n_test", "training_seconds", "broken_reason",
            "triggered_by", "created_by", "activation_note", "evaluation", "created_at", "live_accuracy",
        ]  # fmt: skip

    @extend_schema_field(LiveAccuracySerializer)
    def get_live_accuracy(self, version: ModelVersion) -> dict:
        computed = self.context.get("live_accuracy")  # a list view computes them all in one query
        if computed is None:
            return version_live_accuracy(version=version)
        return computed.get(version.pk) or {"labelled": 0, "correct": 0, "accuracy": None}


class ActivationSerializer(serializers.ModelSerializer):
    """One activation of a version (promotion or rollback), with who and when."""

    model = serializers.CharField(source="model.name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True, allow_null=True)
    previous_version = serializers.IntegerField(source="previous_version.number", read_only=True, allow_null=True)
    activated_by = serializers.CharField(source="activated_by.username", read_only=True, allow_null=True)
    activated_at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = ModelActivation
        fields = [
            "model", "version", "previous_version", "activated_by", "actor", "reason", "evidence", "activated_at"
        ]  # fmt: skip


class VersionDetailSerializer(VersionSerializer):
    activations = serializers.SerializerMethodField(help_text="When it was made active, by whom (newest first).")

    class Meta(VersionSerializer.Meta):
        fields = [*VersionSerializer.Meta.fields, "classification_report", "confusion_matrix", "activations"]

    @extend_schema_field(ActivationSerializer(many=True))
    def get_activations(self, version: ModelVersion) -> list:
        records = version.activations.select_related("model", "version", "previous_version", "activated_by")[:20]
        return ActivationSerializer(records, many=True).data


class ActivateRequestSerializer(serializers.Serializer):
    reason = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=500,
        # Text cannot hold NUL (PostgreSQL refuses it): refused, and the published pattern says so.
        validators=[RegexValidator(r"^[^\x00]*$", "The reason must not contain the NUL character (\\u0000).")],
        help_text="Why (kept in the audit trail).",
    )


class ChallengerRequestSerializer(serializers.Serializer):
    version = StrictIntegerField(
        min_value=1, max_value=2**31 - 1, help_text="The version to shadow the champion with (not the active one)."
    )


class ChallengerSerializer(serializers.Serializer):
    """The challenger's record in shadow against the champion since it was set."""

    model = serializers.CharField()
    champion_version = serializers.IntegerField(allow_null=True)
    challenger_version = serializers.IntegerField(allow_null=True, help_text="null: no challenger is set.")
    since = serializers.DateTimeField(allow_null=True, required=False)
    shadow_predictions = serializers.IntegerField(required=False, help_text="Predictions it also answered.")
    agreement = serializers.FloatField(allow_null=True, required=False, help_text="Share answered alike.")
    labelled = serializers.IntegerField(required=False, help_text="Shadowed predictions with feedback.")
    champion_correct = serializers.IntegerField(required=False)
    challenger_correct = serializers.IntegerField(required=False)
    champion_only = serializers.IntegerField(required=False, help_text="Labelled rows only the champion got right.")
    challenger_only = serializers.IntegerField(required=False, help_text="Labelled rows only the challenger got right.")
    test = serializers.CharField(required=False, help_text="mcnemar-exact: two-sided binomial test on those rows.")
    p_value = serializers.FloatField(required=False)
    recommendation = serializers.ChoiceField(
        choices=["keep champion", "promote challenger", "not enough labels"], required=False
    )


class ServingAtSerializer(serializers.Serializer):
    model = serializers.CharField()
    at = serializers.DateTimeField()
    version = serializers.IntegerField(allow_null=True, help_text="null: nothing was active yet.")


class SyncReportSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.CharField(), help_text="New versions found on disk.")
    removed = serializers.ListField(child=serializers.CharField(), help_text="Versions whose file was deleted.")
    broken = serializers.ListField(child=serializers.CharField(), help_text="Versions that cannot serve.")
    restored = serializers.ListField(child=serializers.CharField(), help_text="Versions whose file came back.")
    unchanged = serializers.IntegerField()
    ignored = serializers.ListField(child=serializers.CharField(), help_text="Files not named <name>_model.pkl.")


class PredictBatchSerializer(serializers.Serializer):
    instances = serializers.ListField(
        child=PenguinSerializer(),
        min_length=1,
        max_length=settings.PENGUIN_MAX_BATCH,
        help_text="One to PENGUIN_MAX_BATCH penguins.",
    )


class PredictedRowSerializer(serializers.Serializer):
    prediction_id = serializers.IntegerField(help_text="Id of the logged row: GET /api/v1/predictions/<id>.")
    species_id = serializers.IntegerField(help_text="1=Adelie, 2=Chinstrap, 3=Gentoo.")
    species_name = serializers.ChoiceField(choices=SPECIES_NAMES)
    probabilities = ProbabilitiesSerializer()


class PredictResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField(help_text="The version that answered.")
    count = serializers.IntegerField(help_text="Number of rows scored (and logged).")
    predictions = PredictedRowSerializer(many=True, help_text="One per input row, in input order.")


class PredictionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    inputs = PenguinOutputSerializer(read_only=True)
    species_name = serializers.SerializerMethodField()
    probabilities = ProbabilitiesSerializer(read_only=True, allow_null=True)
    true_species_name = serializers.SerializerMethodField()
    correct = serializers.SerializerMethodField(help_text="Whether the prediction was right; null without feedback.")
    feedback_by = serializers.CharField(source="feedback_by.username", read_only=True, allow_null=True)

    class Meta:
        model = Prediction
        fields = [
            "id", "model", "version", "created_at", "endpoint", "inputs", "species_id", "species_name",
            "probabilities", "latency_ms", "true_species_id", "true_species_name", "correct", "feedback_at",
            "feedback_by",
        ]  # fmt: skip

    @extend_schema_field(serializers.ChoiceField(choices=SPECIES_NAMES))
    def get_species_name(self, prediction: Prediction) -> str:
        return SPECIES[prediction.species_id]

    @extend_schema_field(serializers.ChoiceField(choices=SPECIES_NAMES, allow_null=True))
    def get_true_species_name(self, prediction: Prediction) -> str | None:
        return SPECIES.get(prediction.true_species_id)

    def get_correct(self, prediction: Prediction) -> bool | None:
        if prediction.true_species_id is None:
            return None
        return prediction.true_species_id == prediction.species_id


class FeedbackRequestSerializer(serializers.Serializer):
    species = SpeciesField(help_text="The penguin's true species: 1=Adelie, 2=Chinstrap, 3=Gentoo, or the name.")
