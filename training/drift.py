"""Retraining on confirmed drift (``PENGUIN_RETRAIN_ON_DRIFT``), through the one training door.

Classifier's monitoring sends ``dataset_drift_confirmed`` when the active version's dataset
drifted in two consecutive checks; this retrains the model (``training_run_retrain``: the
algorithm, params, data and split of its last good run) with trigger "drift" when the setting
is on.
"""

from __future__ import annotations

import logging

from django.conf import settings

from classifier.models import MonitoringReport

from .catalogue import ParamError
from .models import TrainingRun
from .services.runs import TrainingConflict, TrainingQueueUnavailable
from .start import training_run_retrain

logger = logging.getLogger(__name__)


def retrain_on_drift(sender, *, report: MonitoringReport, **kwargs) -> TrainingRun | None:
    if not settings.PENGUIN_RETRAIN_ON_DRIFT:
        return None
    name = report.model.name
    try:
        run = training_run_retrain(model_name=name, trigger=TrainingRun.Trigger.DRIFT)
    except (TrainingConflict, TrainingQueueUnavailable, ParamError) as exc:
        logger.warning("drift on %s: not retrained (%s)", name, exc)
        return None
    logger.info("drift on %s v%s: training run %s started", name, report.version.number, run.pk)
    return run
