"""Prometheus metrics and the ``/metrics`` endpoint.

Counters and histograms live in the process that changes them (request middleware,
``prediction_make``, the model cache). Under gunicorn every worker is its own process:
``penguinsite/gunicorn.conf.py`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder
before the workers start, prometheus-client then keeps each worker's values in a file
there, and ``/metrics`` adds them up whichever worker answers. Without that variable
(``runserver``, tests, one process) the ordinary in-memory registry is used.

Training runs finish in Celery workers, which nobody scrapes; their counts and durations
are read from the ``TrainingRun`` table at scrape time instead, so ``/metrics`` on any web
worker reports every run, whichever process ran it.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from django.db.models import Count, Max, Q, Sum
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.django import PrometheusDjangoView

from .encoding import SPECIES
from .models import MLModel, MonitoringReport

logger = logging.getLogger(__name__)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

HTTP_REQUESTS = Counter(
    "penguin_http_requests",
    "HTTP requests answered, by method, URL pattern and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "penguin_http_request_duration_seconds",
    "Time from the request reaching Django to the response leaving it.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
PREDICTIONS = Counter(
    "penguin_predictions",
    "Logged predictions (one per classified row), by model, version and predicted species.",
    ["model", "version", "species"],
)
MODEL_CACHE_HITS = Counter(
    "penguin_model_cache_hits",
    "Requests answered by a model version already loaded in the process.",
)
MODEL_CACHE_LOADS = Counter(
    "penguin_model_cache_loads",
    "Model versions read from disk, verified and loaded into the process cache.",
)

# Training takes seconds to minutes.
TRAINING_DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)


def http_request_observe(*, method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_REQUEST_SECONDS.labels(method=method, route=route).observe(seconds)


def predictions_record(*, model_name: str, version_number: int, species_ids: np.ndarray) -> None:
    """Count a batch of logged predictions: one increment per species, not per row."""
    codes, counts = np.unique(np.asarray(species_ids), return_counts=True)
    version = str(version_number)
    for code, count in zip(codes.tolist(), counts.tolist()):
        PREDICTIONS.labels(model=model_name, version=version, species=SPECIES.get(code, str(code))).inc(count)


class TrainingRunCollector:
    """``penguin_training_runs`` and ``penguin_training_run_duration_seconds`` from the database.

    Two small aggregate queries per scrape (the table holds one row per training request).
    When the database is unreachable the two metrics are left out; the rest still answer.
    """

    def describe(self):
        # Lets the registry learn the names without querying the database at import.
        return [self._runs_family(), self._duration_family()]

    def collect(self):
        try:
            from training.models import TrainingRun

            counts = list(TrainingRun.objects.order_by().values("algorithm", "status").annotate(n=Count("pk")))
            buckets = {
                f"le_{i}": Count("pk", filter=Q(duration_seconds__lte=b))
                for i, b in enumerate(TRAINING_DURATION_BUCKETS)
            }
            durations = list(
                TrainingRun.objects.order_by()
                .filter(duration_seconds__isnull=False)
                .values("status")
                .annotate(n=Count("pk"), total=Sum("duration_seconds"), **buckets)
            )
        except Exception as exc:
            logger.warning("metrics: training runs not read from the database (%s)", type(exc).__name__)
            return
        runs = self._runs_family()
        for row in counts:
            runs.add_metric([row["algorithm"], row["status"]], row["n"])
        duration = self._duration_family()
        for row in durations:
            cumulative = [(str(b), row[f"le_{i}"]) for i, b in enumerate(TRAINING_DURATION_BUCKETS)]
            duration.add_metric([row["status"]], [*cumulative, ("+Inf", row["n"])], sum_value=row["total"] or 0.0)
        yield runs
        yield duration

    @staticmethod
    def _runs_family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "penguin_training_runs", "Training runs recorded, by algorithm and status.", labels=["algorithm", "status"]
        )

    @staticmethod
    def _duration_family() -> HistogramMetricFamily:
        return HistogramMetricFamily(
            "penguin_training_run_duration_seconds",
            "Duration of finished training runs (queued time excluded), by final status.",
            labels=["status"],
        )


class MonitoringCollector:
    """``penguin_model_drift``, ``…_drift_share``, ``…_live_accuracy``, ``…_labelled`` per active version.

    Read at scrape time from each active version's latest stored check (``monitor_models`` or
    beat), so every web worker reports the same values. A check without a drift verdict (not
    enough data, no reference) gives no drift gauges; one without feedback no accuracy gauge.
    """

    def describe(self):
        return self._families()

    def collect(self):
        try:
            active = MLModel.objects.filter(active_version__isnull=False).values_list("active_version_id", flat=True)
            latest = (
                MonitoringReport.objects.filter(version_id__in=list(active))
                .order_by()
                .values("version_id")
                .annotate(latest=Max("id"))
                .values_list("latest", flat=True)
            )
            reports = list(MonitoringReport.objects.filter(id__in=list(latest)).select_related("model", "version"))
        except Exception as exc:
            logger.warning("metrics: monitoring reports not read from the database (%s)", type(exc).__name__)
            return
        drift, share, accuracy, labelled = self._families()
        for report in reports:
            labels = [report.model.name, str(report.version.number)]
            if report.dataset_drift is not None:
                drift.add_metric(labels, 1.0 if report.dataset_drift else 0.0)
                share.add_metric(labels, report.drift_share)
            if report.accuracy is not None:
                accuracy.add_metric(labels, report.accuracy)
            labelled.add_metric(labels, report.labelled)
        yield from (drift, share, accuracy, labelled)

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        labels = ["model", "version"]
        return [
            GaugeMetricFamily(
                "penguin_model_drift", "1 when the latest check found dataset drift, else 0.", labels=labels
            ),
            GaugeMetricFamily(
                "penguin_model_drift_share", "Share of input features drifting in the latest check.", labels=labels
            ),
            GaugeMetricFamily(
                "penguin_model_live_accuracy", "Accuracy on labelled predictions in the latest check.", labels=labels
            ),
            GaugeMetricFamily(
                "penguin_model_labelled", "Labelled predictions (with feedback) in the latest check.", labels=labels
            ),
        ]


def _exposition_registry() -> CollectorRegistry:
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    registry.register(TrainingRunCollector())
    registry.register(MonitoringCollector())
    return registry


class MetricsView(PrometheusDjangoView):
    """``GET /metrics`` in the Prometheus text format (OpenMetrics when asked for)."""

    registry = _exposition_registry()
