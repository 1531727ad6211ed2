"""``/metrics`` gauges from each active version's latest stored monitoring check."""

from __future__ import annotations

import logging

from django.db.models import Max
from prometheus_client.core import GaugeMetricFamily

from ..models import MLModel, MonitoringReport

logger = logging.getLogger(__name__)


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
