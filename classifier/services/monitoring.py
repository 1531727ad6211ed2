"""Monitoring a version from its prediction log: drift, live accuracy, volume and latency.

A window is the last 7 days by default (``since``/``until`` to choose), read newest first and
cut at ``PENGUIN_MONITOR_MAX_ROWS`` rows; below ``PENGUIN_MONITOR_MIN_ROWS`` predictions there
is no drift verdict. The statistics are in ``classifier.monitoring.drift`` and ``.quality``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.datasets import DatasetError, dataset_load
from core.encoding import FIELDS, SPECIES
from core.errors import DomainError

from ..models import MLModel, ModelVersion, MonitoringReport, Prediction
from ..monitoring import signals
from ..monitoring.drift import dataset_drift, prediction_drift
from ..monitoring.quality import latency_percentiles, live_accuracy
from ..monitoring.reference import Reference, profile_build

logger = logging.getLogger(__name__)

WINDOW = timedelta(days=7)
EARLIEST = datetime.min.replace(tzinfo=UTC)
SHIPPED_DATASET = "shipped dataset"
_COLUMNS = (*FIELDS, "species_id", "true_species_id", "latency_ms")


class MonitoringError(DomainError):
    """The report cannot be made as asked (400 naming the field, e.g. ``since`` after ``until``)."""


def monitoring_window(*, since: datetime | None = None, until: datetime | None = None) -> tuple[datetime, datetime]:
    """The window's bounds: ``until`` defaults to now, ``since`` to 7 days before ``until``."""
    until = until or timezone.now()
    if since is None:  # near the start of the calendar the window is shorter (and may be empty)
        return (until - WINDOW if until - EARLIEST > WINDOW else EARLIEST), until
    if since >= until:
        raise MonitoringError("since must be earlier than until.", field="since")
    return since, until


def version_reference(version: ModelVersion) -> tuple[Reference | None, str]:
    """The profile the version is compared with, or None and the reason there is none.

    Versions without their own profile (discovered files, earlier pickles, versions trained
    before profiles were kept) are compared with the shipped dataset.
    """
    if version.reference:
        return Reference.from_profile(version.reference), ""
    path = Path(settings.PENGUIN_DATA_PATH)
    try:
        return _shipped_reference(str(path), path.stat().st_mtime), ""
    except (OSError, DatasetError) as exc:
        return None, f"{version} has no reference profile of its own and the shipped dataset is unusable ({exc})."


@functools.lru_cache(maxsize=2)
def _shipped_reference(path: str, mtime: float) -> Reference:
    dataset = dataset_load(path)
    profile = profile_build(dataset.features(), dataset.target(), fields=FIELDS, source=SHIPPED_DATASET)
    return Reference.from_profile(profile)


def _window_rows(version: ModelVersion, since: datetime, until: datetime, limit: int) -> dict[str, np.ndarray]:
    """The window's most recent ``limit`` rows as columns (the (version, -id) index serves it)."""
    rows = list(
        Prediction.objects.filter(version=version, created_at__gte=since, created_at__lt=until)
        .order_by("-id")
        .annotate(day=TruncDate("created_at"))
        .values_list(*_COLUMNS, "day")[:limit]
    )
    if not rows:
        empty = np.empty(0)
        return {
            "features": np.empty((0, len(FIELDS))),
            "species_id": empty.astype(int),
            "true_species_id": empty.astype(int),
            "latency_ms": empty,
            "created_at": empty.astype("datetime64[D]"),
        }
    numbers = np.array([row[:-1] for row in rows], dtype=float)  # NULL feedback → nan
    return {
        "features": numbers[:, : len(FIELDS)],
        "species_id": numbers[:, len(FIELDS)].astype(int),
        "true_species_id": np.nan_to_num(numbers[:, len(FIELDS) + 1], nan=0).astype(int),
        "latency_ms": numbers[:, len(FIELDS) + 2],
        "created_at": np.array([row[-1] for row in rows], dtype="datetime64[D]"),
    }


def _daily(days: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> list[dict]:
    result = []
    for day in np.unique(days):
        on_day = days == day
        labelled = on_day & (actual > 0)
        result.append(
            {
                "date": str(day),
                "predictions": int(on_day.sum()),
                "labelled": int(labelled.sum()),
                "correct": int((labelled & (predicted == actual)).sum()),
            }
        )
    return result


def _accuracy_section(predicted: np.ndarray, actual: np.ndarray, rows: int) -> dict:
    result = live_accuracy(predicted, actual, classes=sorted(SPECIES))
    section = {
        "labelled": result.labelled,
        "correct": result.correct,
        "accuracy": result.accuracy,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "coverage": result.labelled / rows if rows else None,
        "recall": {SPECIES[key]: value for key, value in result.recall.items()},
    }
    if result.reason:
        section["reason"] = result.reason
    return section


def monitoring_report(
    *,
    model: MLModel,
    version: ModelVersion | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict:
    """The monitoring report of ``version`` (default: the model's active one) over a window."""
    return monitoring_analysis(model=model, version=version, since=since, until=until).report


@dataclass(frozen=True)
class Analysis:
    """A report with what it was computed from (the admin draws the histograms from these)."""

    report: dict
    version: ModelVersion
    window: dict[str, np.ndarray]
    reference: Reference | None


def monitoring_analysis(
    *,
    model: MLModel,
    version: ModelVersion | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Analysis:
    """``monitoring_report`` with the window's rows and the reference kept beside it."""
    if version is None:
        version = model.active_version
        if version is None:
            raise MonitoringError(f"{model.name} has no active version; give one with ?version=.", field="version")
    since, until = monitoring_window(since=since, until=until)
    max_rows, min_rows = settings.PENGUIN_MONITOR_MAX_ROWS, settings.PENGUIN_MONITOR_MIN_ROWS
    window = _window_rows(version, since, until, max_rows)
    rows = len(window["species_id"])
    reference, reference_note = version_reference(version)
    report = {
        "model": model.name,
        "version": version.number,
        "window": {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "predictions": rows,
            "max_rows": max_rows,
            "capped": rows == max_rows,
        },
        "reference": {"source": reference.source, "rows": reference.rows} if reference else None,
        "verdict": MonitoringReport.Verdict.NOT_ENOUGH_DATA.value,
        "dataset_drift": None,
        "drift_share": None,
        "features": [],
        "prediction_drift": None,
        "live_accuracy": _accuracy_section(window["species_id"], window["true_species_id"], rows),
        "latency_ms": latency_percentiles(window["latency_ms"]),
        "daily": _daily(window["created_at"], window["species_id"], window["true_species_id"]),
    }
    if reference is None:
        report["verdict"] = MonitoringReport.Verdict.NO_REFERENCE.value
        report["message"] = f"No drift check: {reference_note}"
        return Analysis(report, version, window, None)
    if rows < min_rows:
        report["needed"] = min_rows - rows
        report["message"] = (
            f"Not enough data: {rows} prediction(s) in the window, {min_rows - rows} more needed "
            f"(PENGUIN_MONITOR_MIN_ROWS={min_rows})."
        )
        return Analysis(report, version, window, reference)
    drift = dataset_drift(FIELDS, reference.matrix(FIELDS), window["features"])
    # Every species counts, so one the training rows lacked but the model predicts is drift, not an error.
    class_counts = {key: reference.class_counts.get(key, 0) for key in SPECIES}
    predicted = prediction_drift(window["species_id"], class_counts)
    report.update(
        verdict=(MonitoringReport.Verdict.DRIFT if drift.dataset_drift else MonitoringReport.Verdict.NO_DRIFT).value,
        dataset_drift=drift.dataset_drift,
        drift_share=drift.share,
        features=[feature.as_dict() for feature in drift.features],
        prediction_drift=predicted.as_dict(SPECIES),
    )
    return Analysis(report, version, window, reference)


def monitoring_report_store(*, version: ModelVersion, report: dict) -> MonitoringReport:
    """Keep a report as a check in the version's history."""
    accuracy = report["live_accuracy"]
    return MonitoringReport.objects.create(
        model_id=version.model_id,
        version=version,
        window_since=datetime.fromisoformat(report["window"]["since"]),
        window_until=datetime.fromisoformat(report["window"]["until"]),
        predictions=report["window"]["predictions"],
        verdict=report["verdict"],
        dataset_drift=report["dataset_drift"],
        drift_share=report["drift_share"],
        drifted_features=[feature["name"] for feature in report["features"] if feature["drift"]],
        labelled=accuracy["labelled"],
        accuracy=accuracy["accuracy"],
        accuracy_low=accuracy["ci_low"],
        accuracy_high=accuracy["ci_high"],
        report=report,
    )


def monitoring_check(*, model: MLModel) -> MonitoringReport:
    """Check the model's active version now, store the report and signal confirmed drift."""
    version = model.active_version
    stored = monitoring_report_store(version=version, report=monitoring_report(model=model, version=version))
    if stored.verdict == MonitoringReport.Verdict.DRIFT:
        # An operator's alert: one warning line per drifting check (JSON logs in production).
        logger.warning(
            "monitoring: %s has dataset drift (%d of %d features: %s)",
            version,
            len(stored.drifted_features),
            len(FIELDS),
            ", ".join(stored.drifted_features),
        )
    recent = list(MonitoringReport.objects.filter(version=version).order_by("-created_at", "-id")[:3])
    streak = [check.dataset_drift is True for check in recent]
    # Two drifting checks in a row, the first time only (a third in a row does not start another run).
    if streak[:2] == [True, True] and (len(streak) < 3 or not streak[2]):
        transaction.on_commit(
            functools.partial(signals.dataset_drift_confirmed.send, sender=MonitoringReport, report=stored)
        )
    return stored


def monitoring_check_all() -> list[MonitoringReport]:
    """``monitoring_check`` for every model with an active version."""
    models = MLModel.objects.filter(active_version__isnull=False).select_related("active_version")
    return [monitoring_check(model=model) for model in models]
