"""Training runs in ``/metrics``: ``penguin_training_runs`` and their durations, read at scrape time.

Training runs finish in Celery workers, which nobody scrapes; their counts and durations
are read from the ``TrainingRun`` table at scrape time instead, so ``/metrics`` on any web
worker reports every run, whichever process ran it. ``TrainingConfig.ready`` registers it.
"""

from __future__ import annotations

import logging

from django.db.models import Count, Q, Sum
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from .models import TrainingRun

logger = logging.getLogger(__name__)

# Training takes seconds to minutes.
TRAINING_DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)


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
