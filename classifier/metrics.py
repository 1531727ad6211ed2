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
from django.db.models import Count, Q, Sum
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.django import PrometheusDjangoView

from .encoding import SPECIES

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


def _exposition_registry() -> CollectorRegistry:
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    registry.register(TrainingRunCollector())
    return registry


class MetricsView(PrometheusDjangoView):
    """``GET /metrics`` in the Prometheus text format (OpenMetrics when asked for)."""

    registry = _exposition_registry()
