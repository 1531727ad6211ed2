"""Celery tasks: they take a run id, call the training service and record the outcome.

Delivery guarantees (see docs/api.md, "Training runs and workers"): the message is
acknowledged only when the task has finished (``acks_late``) and put back in the queue
when the worker process running it dies (``reject_on_worker_lost``), so a killed worker
does not lose a run; ``training_run_execute`` makes a redelivery safe and caps the
attempts. A sweep at worker start fails runs that no worker can still be running.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from celery.signals import worker_ready
from django import db

from .models import TrainingRun
from .services.runs import training_run_abort, training_run_execute, training_run_fail_stale

logger = logging.getLogger(__name__)


class TrainingTask(DjangoTask):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        """The task itself failed (hard time limit, database error): fail its run too.

        Training errors never get here: the service records them on the run. For a hard
        time limit this runs in the worker's main process after the child was killed.
        """
        run_id = args[0] if args else kwargs.get("run_id")
        try:
            if run_id is not None and training_run_abort(run_id=run_id, exc=exc):
                logger.error("training run %s failed with its task %s: %r", run_id, task_id, exc)
        except Exception:
            logger.exception("could not record the failure of training run %s", run_id)


@shared_task(bind=True, base=TrainingTask, name="training.train_model", acks_late=True, reject_on_worker_lost=True)
def train_model_task(self, run_id: int) -> str:
    """Train the run's model; a redelivered task for a finished run does nothing."""
    try:
        run = training_run_execute(run_id=run_id, task_id=self.request.id or "", worker=self.request.hostname or "")
    except TrainingRun.DoesNotExist:
        # A message outliving its row (database restored, run deleted): nothing to train.
        logger.warning("training run %s does not exist; task %s dropped", run_id, self.request.id)
        return "missing"
    return run.status


@worker_ready.connect
def recover_lost_runs(sender=None, **kwargs) -> None:
    """The recovery sweep, once per worker start: no beat schedule needed.

    Runs older than this worker's hard time limit are lost, and so is every run still
    ``running`` under this worker's own node name: a worker of that name is only starting
    now, so the one that was training them is gone (killed, out of memory, restarted).
    """
    hostname = getattr(sender, "hostname", "") or ""
    time_limit = getattr(getattr(sender, "app", None), "conf", {}).get("task_time_limit")
    try:
        failed = training_run_fail_stale(restarted_worker=hostname, time_limit=time_limit)
    except Exception:
        logger.exception("the training-run recovery sweep failed; run `manage.py recover_training_runs`")
        return
    finally:
        # The worker's main process keeps no connection open while idle (pool children forked
        # later must not inherit its socket).
        if not db.connection.in_atomic_block:
            db.connection.close()
    if failed:
        logger.warning("recovery sweep: runs %s had lost their worker and are now failed", failed)
