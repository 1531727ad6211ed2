"""Prometheus metrics and the ``/metrics`` endpoint.

Counters and histograms live in the process that changes them (request middleware,
``prediction_make``, the model cache). Under gunicorn every worker is its own process:
``penguinsite/gunicorn.conf.py`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder
before the workers start, prometheus-client then keeps each worker's values in a file
there, and ``/metrics`` adds them up whichever worker answers. Without that variable
(``runserver``, tests, one process) the ordinary in-memory registry is used.

Metrics that live in the database (training runs, see ``training.metrics``) come from
collectors an app registers with ``collector_register``; they are read at scrape time.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.django import PrometheusDjangoView

from core.encoding import SPECIES

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


# The labelled children, kept here: ``labels()`` validates the labels and takes a lock on
# every call, which cost more than the increments themselves on a classify request.
_http_children: dict[tuple[str, str, int], tuple] = {}
_prediction_children: dict[tuple[str, int, int], object] = {}


def http_request_observe(*, method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    children = _http_children.get(key)
    if children is None:
        children = _http_children.setdefault(
            key,
            (
                HTTP_REQUESTS.labels(method=method, route=route, status=str(status)),
                HTTP_REQUEST_SECONDS.labels(method=method, route=route),
            ),
        )
    children[0].inc()
    children[1].observe(seconds)


def predictions_record(*, model_name: str, version_number: int, species_ids: np.ndarray) -> None:
    """Count a batch of logged predictions: one increment per species, not per row."""
    codes = np.asarray(species_ids)
    if codes.size == 1:
        counted = [(int(codes.flat[0]), 1)]
    else:
        unique, counts = np.unique(codes, return_counts=True)
        counted = zip(unique.tolist(), counts.tolist())
    for code, count in counted:
        key = (model_name, version_number, code)
        child = _prediction_children.get(key)
        if child is None:
            child = _prediction_children.setdefault(
                key,
                PREDICTIONS.labels(model=model_name, version=str(version_number), species=SPECIES.get(code, str(code))),
            )
        child.inc(count)


def _exposition_registry() -> CollectorRegistry:
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


EXPOSITION = _exposition_registry()


def collector_register(collector) -> None:
    """Add a collector read at every scrape (an app's metrics taken from the database)."""
    EXPOSITION.register(collector)


class MetricsView(PrometheusDjangoView):
    """``GET /metrics`` in the Prometheus text format (OpenMetrics when asked for)."""

    registry = EXPOSITION
