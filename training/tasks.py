"""Celery tasks: they take a run id, call the training service and record the outcome."""

from __future__ import annotations

from celery import shared_task

from .services import training_run_execute


@shared_task(name="training.train_model", acks_late=True, reject_on_worker_lost=True)
def train_model_task(run_id: int) -> str:
    """Train the run's model; a redelivered task for a finished run does nothing."""
    run = training_run_execute(run_id=run_id, task_id=train_model_task.request.id or "")
    return run.status
