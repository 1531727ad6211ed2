"""Starting a run: record it, then train it in a Celery worker or here in this process.

``training_run_start`` is the one door every caller trains through (API, admin,
``train_model``, ``bootstrap``, the notebook). A queued run's id goes to Celery after the
transaction commits.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from classifier.models import MLModel

from .catalogue import CATALOGUE, ParamError
from .holdout import DEFAULT_SPLIT_SEED
from .models import ActivationMode, TrainingRun
from .services.runs import TrainingQueueUnavailable, finish, training_run_create, training_run_execute
from .tasks import train_model_task

logger = logging.getLogger(__name__)


def training_run_start(
    *,
    algorithm: str,
    params: dict[str, Any] | None = None,
    model_name: str | None = None,
    data_path: str | None = None,
    test_size: float = 0.2,
    seed: int = 42,
    split_seed: int = DEFAULT_SPLIT_SEED,
    activation: str = ActivationMode.NOT_WORSE,
    trigger: str = TrainingRun.Trigger.COMMAND,
    user: AbstractBaseUser | None = None,
    in_process: bool | None = None,
) -> TrainingRun:
    """Record a run and train it: in a Celery worker, or here in this process.

    ``in_process=None`` sends the run to a worker when a broker is configured and trains
    here when none is (the embedded default); ``True`` always trains here (``train_model``
    in the foreground). A queued run is sent once the surrounding transaction commits, so
    a worker never looks for a row it cannot see yet. Outside a transaction a broker that
    cannot take the run raises TrainingQueueUnavailable (the run is recorded as failed);
    inside one the same failure is recorded on the run and logged.
    The other arguments are those of ``training_run_create``; raises ParamError and
    TrainingConflict.
    """
    request = {
        "algorithm": algorithm,
        "params": params,
        "model_name": model_name,
        "data_path": data_path,
        "test_size": test_size,
        "seed": seed,
        "split_seed": split_seed,
        "activation": activation,
        "trigger": trigger,
        "user": user,
    }
    if in_process is None:
        in_process = settings.CELERY_TASK_ALWAYS_EAGER
    if in_process:
        run = training_run_create(**request)
        return training_run_execute(run_id=run.pk)
    run = training_run_create(**request, task_id=str(uuid.uuid4()))
    # Inside a transaction, a broker failure after the commit is recorded on the run and
    # logged (robust) rather than raised out of the caller's commit.
    in_transaction = transaction.get_connection().in_atomic_block
    run_id, task_id = run.pk, run.task_id

    def enqueue_training_run() -> None:  # a named function: Django logs a robust callback by name
        _enqueue(run_id=run_id, task_id=task_id)

    transaction.on_commit(enqueue_training_run, robust=in_transaction)
    run.refresh_from_db()
    return run


def training_run_retrain(
    *, model_name: str, trigger: str, user: AbstractBaseUser | None = None, in_process: bool | None = None
) -> TrainingRun:
    """Train a model again with the algorithm, params, data, split and seed of its last good run.

    A model that never trained here (a discovered file) is trained with its algorithm's
    defaults when the catalogue knows it; otherwise ParamError says to train a new model.
    """
    model = MLModel.objects.filter(name=model_name).first()
    algorithm = model.algorithm if model else ""
    if algorithm not in CATALOGUE:
        raise ParamError(
            "algorithm",
            f"{model_name} cannot be retrained: its algorithm {algorithm or '(unknown)'!r} is not in the catalogue "
            f"({', '.join(CATALOGUE)}); train a new model with one of those instead.",
        )
    succeeded = TrainingRun.objects.filter(model_name=model_name, status=TrainingRun.Status.SUCCEEDED)
    last = succeeded.order_by("-id").first()
    data_path = last.data_path if last and Path(last.data_path).is_file() else None
    return training_run_start(
        in_process=in_process,
        algorithm=algorithm,
        params=last.params if last else {},
        model_name=model_name,
        data_path=data_path,
        test_size=last.test_size if last else 0.2,
        seed=last.seed if last else 42,
        split_seed=last.split_seed if last else DEFAULT_SPLIT_SEED,
        trigger=trigger,
        user=user,
    )


def _enqueue(*, run_id: int, task_id: str) -> None:
    try:
        # retry=False: a broker that is down answers now, not after minutes of retries.
        train_model_task.apply_async(args=[run_id], task_id=task_id, retry=False)
    except Exception as exc:  # broker down: record it, do not leave the run queued forever
        logger.warning("could not queue training run %s: %s", run_id, exc)
        message = f"could not queue the run: the broker is unavailable ({type(exc).__name__}). Try again later."
        finish(run_id, status=TrainingRun.Status.FAILED, error=message)
        raise TrainingQueueUnavailable(message) from exc
