"""What the admin's monitoring pages show: the report, its pictures and the checks history."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
from django.db.models import Count, Max
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.safestring import mark_safe

from ..encoding import FIELDS, SPECIES
from ..models import MLModel, ModelVersion, MonitoringReport, Prediction
from . import charts
from .quality import wilson_interval
from .service import monitoring_analysis

VOLUME_DAYS = 30
HISTORY_ROWS = 20
SPECIES_ORDER = [SPECIES[code] for code in sorted(SPECIES)]


def daily_volume(*, model: MLModel, days: int = VOLUME_DAYS) -> tuple[list[date], dict[str, list[int]]]:
    """Predictions per day per version over the last ``days`` days (one grouped query)."""
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    rows = (
        Prediction.objects.filter(model=model, created_at__gte=since)
        .order_by()
        .annotate(day=TruncDate("created_at"))
        .values("day", "version__number")
        .annotate(n=Count("id"))
    )
    calendar = [first + timedelta(days=offset) for offset in range(days)]
    position = {day: index for index, day in enumerate(calendar)}
    series: dict[str, list[int]] = {}
    for row in rows:
        counts = series.setdefault(f"v{row['version__number']}", [0] * days)
        if row["day"] in position:
            counts[position[row["day"]]] += row["n"]
    return calendar, dict(sorted(series.items(), key=lambda item: int(item[0][1:])))


def _accuracy_points(daily: list[dict]) -> list[tuple[date, float, float, float]]:
    points = []
    for day in daily:
        if day["labelled"]:
            low, high = wilson_interval(day["correct"], day["labelled"])
            points.append((date.fromisoformat(day["date"]), day["correct"] / day["labelled"], low, high))
    return points


def model_monitoring_context(*, model: MLModel, version: ModelVersion | None = None, since=None, until=None) -> dict:
    """The monitoring page of a model: report, pictures, drifted features, checks history."""
    analysis = monitoring_analysis(model=model, version=version, since=since, until=until)
    report = analysis.report
    days, series = daily_volume(model=model)
    pictures = {
        "volume": charts.volume_chart(days, series),
        "accuracy": charts.accuracy_chart(_accuracy_points(report["daily"])),
    }
    drift = report["prediction_drift"]
    if drift is not None:
        pictures["mix"] = charts.mix_chart(drift["current"], drift["reference"], p_value=drift["p_value"])
    elif analysis.reference is not None:
        counts = analysis.reference.class_counts
        total = sum(counts.values())
        reference_mix = {SPECIES[key]: counts.get(key, 0) / total for key in sorted(SPECIES)}
        predicted = analysis.window["species_id"]
        current = {SPECIES[key]: float(np.mean(predicted == key)) if predicted.size else 0.0 for key in sorted(SPECIES)}
        pictures["mix"] = charts.mix_chart(current, reference_mix)
    histograms = []
    for feature in report["features"]:
        if feature["drift"]:
            column = FIELDS.index(feature["name"])
            svg = charts.feature_histogram(
                feature["name"],
                analysis.reference.values[feature["name"]],
                analysis.window["features"][:, column],
                test=feature["test"],
                p_value=feature["p_value"],
                drift=True,
            )
            histograms.append({"name": feature["name"], "svg": mark_safe(svg)})  # our own SVG text
    history = list(MonitoringReport.objects.filter(model=model).select_related("version")[:HISTORY_ROWS])
    return {
        "report": report,
        "version": analysis.version,
        "pictures": {name: mark_safe(svg) for name, svg in pictures.items()},  # our own SVG text
        "histograms": histograms,
        "history": history,
        "recall": report["live_accuracy"]["recall"],
    }


def version_feedback(*, version: ModelVersion) -> dict:
    """A version's prediction count, live accuracy with its interval, and feedback's confusion matrix."""
    predictions = Prediction.objects.filter(version=version).count()
    cells = (
        Prediction.objects.filter(version=version, true_species_id__isnull=False)
        .order_by()
        .values("true_species_id", "species_id")
        .annotate(n=Count("id"))
    )
    codes = sorted(SPECIES)
    matrix = [[0] * len(codes) for _ in codes]
    for cell in cells:
        matrix[codes.index(cell["true_species_id"])][codes.index(cell["species_id"])] = cell["n"]
    labelled = sum(map(sum, matrix))
    correct = sum(matrix[i][i] for i in range(len(codes)))
    result = {"predictions": predictions, "labelled": labelled, "correct": correct, "accuracy": None}
    if labelled:
        low, high = wilson_interval(correct, labelled)
        result.update(accuracy=correct / labelled, ci_low=low, ci_high=high)
        title = f"Feedback on {version}: {labelled} labelled"
        result["confusion_svg"] = mark_safe(charts.confusion_chart(SPECIES_ORDER, matrix, title))  # our own SVG
    return result


def latest_checks(*, model_ids: list[int]) -> dict[int, MonitoringReport]:
    """Each model's latest stored check (the model list's drift badge)."""
    latest = (
        MonitoringReport.objects.filter(model_id__in=model_ids)
        .order_by()
        .values("model_id")
        .annotate(latest=Max("id"))
        .values_list("latest", flat=True)
    )
    return {check.model_id: check for check in MonitoringReport.objects.filter(id__in=list(latest))}
