"""Retraining on confirmed drift (``PENGUIN_RETRAIN_ON_DRIFT``), through the one training service.

Classifier's monitoring sends ``dataset_drift_confirmed`` when the active version's dataset
drifted in two consecutive checks; this starts a run of the same algorithm for the same model,
with trigger "drift", when the setting is on.
"""

from __future__ import annotations

import logging

from django.conf import settings

from classifier.models import MonitoringReport

from .catalogue import CATALOGUE, ParamError
from .models import TrainingRun
from .services import TrainingConflict, TrainingQueueUnavailable, training_run_start

logger = logging.getLogger(__name__)


def retrain_on_drift(sender, *, report: MonitoringReport, **kwargs) -> TrainingRun | None:
    if not settings.PENGUIN_RETRAIN_ON_DRIFT:
        return None
    model = report.model
    algorithm = report.version.algorithm or model.algorithm
    if algorithm not in CATALOGUE:
        logger.warning("drift on %s: not retrained, %r is not an algorithm of the catalogue", model.name, algorithm)
        return None
    try:
        run = training_run_start(algorithm=algorithm, model_name=model.name, trigger=TrainingRun.Trigger.DRIFT)
    except (TrainingConflict, TrainingQueueUnavailable, ParamError) as exc:
        logger.warning("drift on %s: not retrained (%s)", model.name, exc)
        return None
    logger.info("drift on %s v%s: training run %s started", model.name, report.version.number, run.pk)
    return run
