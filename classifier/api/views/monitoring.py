"""``GET /api/v1/models/<name>/monitoring``: drift, live accuracy, volume and latency of a version.

The answer's serializers are here, beside the one view that gives it; they document the schema.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from classifier.models import MonitoringReport
from classifier.services.monitoring import monitoring_report
from core.api.schema import error, errors
from core.api.serializers import UtcDateTimeField

VERDICTS = [choice.value for choice in MonitoringReport.Verdict]


class MonitoringQuerySerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    since = UtcDateTimeField(required=False)
    until = UtcDateTimeField(required=False)


class MonitoringWindowSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    predictions = serializers.IntegerField(help_text="Predictions analysed (at most max_rows, the most recent).")
    max_rows = serializers.IntegerField(help_text="PENGUIN_MONITOR_MAX_ROWS.")
    capped = serializers.BooleanField(help_text="True when the window held more rows than max_rows.")


class MonitoringReferenceSerializer(serializers.Serializer):
    source = serializers.CharField(help_text='"training split", or "shipped dataset" for discovered versions.')
    rows = serializers.IntegerField()


class FeatureDriftSerializer(serializers.Serializer):
    name = serializers.CharField()
    test = serializers.ChoiceField(choices=["ks", "chi2", "z"])
    statistic = serializers.FloatField(allow_null=True, help_text="Null when infinite (a value never seen).")
    p_value = serializers.FloatField()
    drift = serializers.BooleanField(help_text="p ≤ 0.05.")


class PredictionDriftSerializer(serializers.Serializer):
    test = serializers.ChoiceField(choices=["chi2"])
    statistic = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField()
    drift = serializers.BooleanField()
    current = serializers.DictField(child=serializers.FloatField(), help_text="Share of each predicted species.")
    reference = serializers.DictField(child=serializers.FloatField(), help_text="Each species' share in training.")


class MonitoringRecallSerializer(serializers.Serializer):
    labelled = serializers.IntegerField()
    correct = serializers.IntegerField()
    recall = serializers.FloatField(allow_null=True)


class MonitoringAccuracySerializer(serializers.Serializer):
    labelled = serializers.IntegerField()
    correct = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True, help_text="Wilson 95% interval.")
    ci_high = serializers.FloatField(allow_null=True)
    coverage = serializers.FloatField(allow_null=True, help_text="labelled / predictions in the window.")
    recall = serializers.DictField(child=MonitoringRecallSerializer(), help_text="Per true species.")
    reason = serializers.CharField(required=False, help_text="Why accuracy is null.")


class MonitoringLatencySerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)


class MonitoringDaySerializer(serializers.Serializer):
    date = serializers.DateField()
    predictions = serializers.IntegerField()
    labelled = serializers.IntegerField()
    correct = serializers.IntegerField()


class MonitoringReportSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField()
    window = MonitoringWindowSerializer()
    reference = MonitoringReferenceSerializer(allow_null=True)
    verdict = serializers.ChoiceField(choices=VERDICTS)
    message = serializers.CharField(required=False, help_text="Why there is no drift verdict.")
    needed = serializers.IntegerField(required=False, help_text="More predictions needed for a verdict.")
    dataset_drift = serializers.BooleanField(allow_null=True)
    drift_share = serializers.FloatField(allow_null=True)
    features = FeatureDriftSerializer(many=True)
    prediction_drift = PredictionDriftSerializer(allow_null=True)
    live_accuracy = MonitoringAccuracySerializer()
    latency_ms = MonitoringLatencySerializer()
    daily = MonitoringDaySerializer(many=True)


EXAMPLE = {
    "model": "knn",
    "version": 3,
    "window": {
        "since": "2026-11-24T12:00:00+00:00",
        "until": "2026-12-01T12:00:00+00:00",
        "predictions": 300,
        "max_rows": 10000,
        "capped": False,
    },
    "reference": {"source": "training split", "rows": 266},
    "verdict": "drift",
    "dataset_drift": True,
    "drift_share": 0.5714,
    "features": [
        {"name": "island", "test": "chi2", "statistic": 1.27, "p_value": 0.53, "drift": False},
        {"name": "bill_length_mm", "test": "ks", "statistic": 0.41, "p_value": 1.2e-9, "drift": True},
        {"name": "sex", "test": "z", "statistic": 0.31, "p_value": 0.76, "drift": False},
    ],
    "prediction_drift": {
        "test": "chi2",
        "statistic": 3.1,
        "p_value": 0.21,
        "drift": False,
        "current": {"Adelie": 0.44, "Chinstrap": 0.2, "Gentoo": 0.36},
        "reference": {"Adelie": 0.44, "Chinstrap": 0.2, "Gentoo": 0.36},
    },
    "live_accuracy": {
        "labelled": 100,
        "correct": 90,
        "accuracy": 0.9,
        "ci_low": 0.8256,
        "ci_high": 0.9448,
        "coverage": 0.33,
        "recall": {
            "Adelie": {"labelled": 45, "correct": 41, "recall": 0.9111},
            "Chinstrap": {"labelled": 20, "correct": 17, "recall": 0.85},
            "Gentoo": {"labelled": 35, "correct": 32, "recall": 0.9143},
        },
    },
    "latency_ms": {"p50": 0.9, "p95": 2.1},
    "daily": [{"date": "2026-12-01", "predictions": 300, "labelled": 100, "correct": 90}],
}


class MonitoringActionMixin:
    # The ``monitoring`` action of the models viewset (no docstring: the schema would show it).

    @extend_schema(
        operation_id="models_monitoring",
        summary="Drift, live accuracy, volume and latency of a version over a window of the log",
        description=(
            "Compares the version's logged inputs with its reference profile (training rows): per feature a "
            "two-sample Kolmogorov–Smirnov test (> 5 distinct values), chi-squared (3–5) or two-proportion z-test "
            "(binary), drift when p ≤ 0.05; dataset drift when at least half the features drift (Evidently's "
            "defaults for a small reference). The window is the last 7 days unless `since`/`until` say otherwise, "
            "at most PENGUIN_MONITOR_MAX_ROWS most recent rows; below PENGUIN_MONITOR_MIN_ROWS predictions the "
            "verdict is `not_enough_data`. Live accuracy counts labelled predictions only, with a Wilson 95% "
            "interval. Needs a logged-in user."
        ),
        tags=["monitoring"],
        parameters=[
            OpenApiParameter(
                "version",
                {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                description="Version number (default: the active version).",
            ),
            OpenApiParameter(
                "since", OpenApiTypes.DATETIME, description="Start of the window, ISO 8601 (default: until − 7 days)."
            ),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="End of the window, ISO 8601 (default: now)."),
        ],
        responses={
            200: MonitoringReportSerializer,
            **errors(400, 401),
            404: error(
                404,
                "No such model, or no such version of it.",
                {"detail": "Model 'knn' has no version 9.", "code": "version_not_found"},
            ),
        },
        examples=[OpenApiExample("A drifting version", value=EXAMPLE, response_only=True)],
    )
    @action(detail=True, methods=["get"], permission_classes=[IsAuthenticated])
    def monitoring(self, request, name: str):
        model = self.get_object()
        # A plain dict: DRF would read an empty form value ("until=") as absent; here it is a 400.
        query = MonitoringQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        version = None
        number = query.validated_data.get("version")
        if number is not None:
            version = model.versions.filter(number=number).first()
            if version is None:
                raise NotFound(
                    f"Model {model.name!r} has no version {number}; GET /api/v1/models/{model.name}/versions "
                    "lists them.",
                    code="version_not_found",
                )
        # A MonitoringError (since after until) is a DomainError: the error handler answers 400.
        report = monitoring_report(
            model=model,
            version=version,
            since=query.validated_data.get("since"),
            until=query.validated_data.get("until"),
        )
        return Response(report)
