"""Training runs from record to outcome: validate and record a run, train it, recover lost ones.

``training_run_execute`` (called by the task, or in-process when no broker is configured)
trains, registers the version and applies the promotion policy.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from classifier.models import model_name_validator
from classifier.services.registry import model_version_register
from core.datasets import DatasetError, dataset_load

from ..catalogue import ParamError, algorithm_get
from ..holdout import DEFAULT_SPLIT_SEED
from ..models import ActivationMode, TrainingRun
from ..params import dataset_rows, params_check
from ..resources import MemoryCeilingExceeded, memory_ceiling, resident_mb
from ..trainer import train
from .promotion import confusion_matrix_png, identical_version_find, new_version_info, promotion_decide

logger = logging.getLogger(__name__)

# "policy" named not_worse's margin-only predecessor; old clients and rows still say it.
LEGACY_ACTIVATION = {"policy": ActivationMode.NOT_WORSE.value}
MAX_SEED = 2**31 - 1  # the largest seed a run's row holds (a 32-bit integer column)
MAX_PARAMS_DEPTH = 8  # how deeply params may nest (objects and lists)


class TrainingConflict(Exception):
    """A run for this model is already queued or running."""


class TrainingQueueUnavailable(Exception):
    """The broker could not take the run; it is recorded as failed."""


def training_request_validate(
    *,
    algorithm: str,
    params: dict[str, Any] | None,
    model_name: str | None,
    data_path: str | None,
    test_size: float = 0.2,
) -> tuple[str, Path]:
    """Check a request before anything is recorded; raises ParamError naming the field."""
    spec = algorithm_get(algorithm)
    if not isinstance(params or {}, dict):
        raise ParamError("params", "params must be an object of estimator parameter names to values.")
    if _depth(params or {}) > MAX_PARAMS_DEPTH:
        # No estimator parameter nests; checked without recursion, before anything walks them.
        raise ParamError("params", f"params nest deeper than {MAX_PARAMS_DEPTH} levels; no estimator parameter does.")
    if _contains_nul(params):
        # PostgreSQL cannot store it (jsonb refuses \u0000), and no estimator parameter needs it.
        raise ParamError("params", "params must not contain the NUL character (\\u0000).")
    path = Path(data_path) if data_path else Path(settings.PENGUIN_DATA_PATH)
    if not path.is_file():
        raise ParamError("data", f"Data file {path} does not exist.")
    params_check(algorithm=algorithm, params=params or {}, rows=dataset_rows(path))
    spec.build(params or {})
    name = model_name or spec.name
    try:
        model_name_validator(name)
    except Exception:
        raise ParamError("name", f"Invalid model name {name!r}: {model_name_validator.message}") from None
    if not 0.05 <= test_size <= 0.5:
        raise ParamError("test_size", f"test_size must be between 0.05 and 0.5; got {test_size}.")
    return name, path


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (iteratively: any depth is safe)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, level)
            if level > MAX_PARAMS_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_contains_nul(item) for item in value)
    return False


def training_run_create(
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
    task_id: str = "",
) -> TrainingRun:
    """Record a queued run after validating it; one active run per model.

    Raises ParamError (naming the field) for a bad request and TrainingConflict when a run
    for the same model is already queued or running.
    """
    activation = LEGACY_ACTIVATION.get(activation, activation)
    if activation not in ActivationMode.values:
        modes = ", ".join(ActivationMode.values)
        raise ParamError("activate", f"activate must be one of {modes}; got {activation!r:.40}.")
    for field_name, value in (("seed", seed), ("split_seed", split_seed)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
            raise ParamError(
                field_name, f"{field_name} must be a whole number from 0 to {MAX_SEED}; got {value!r:.30}."
            )
    name, path = training_request_validate(
        algorithm=algorithm, params=params, model_name=model_name, data_path=data_path, test_size=test_size
    )
    try:
        with transaction.atomic():
            if TrainingRun.objects.filter(model_name=name, status__in=TrainingRun.ACTIVE_STATUSES).exists():
                raise IntegrityError
            return TrainingRun.objects.create(
                model_name=name,
                algorithm=algorithm,
                params=dict(params or {}),
                data_path=str(path),
                test_size=test_size,
                seed=seed,
                split_seed=split_seed,
                activation=activation,
                trigger=trigger,
                triggered_by=user if user is not None and user.is_authenticated else None,
                task_id=task_id,
            )
    except IntegrityError:
        active = TrainingRun.objects.filter(model_name=name, status__in=TrainingRun.ACTIVE_STATUSES).first()
        detail = f" (run {active.pk}, {active.status})" if active else ""
        raise TrainingConflict(
            f"A training run for {name!r} is already queued or running{detail}; wait for it to finish."
        ) from None


def finish(run_id: int, **fields: Any) -> None:
    now = timezone.now()
    run = TrainingRun.objects.get(pk=run_id)
    started = run.started_at or now
    TrainingRun.objects.filter(pk=run_id).update(
        finished_at=now, duration_seconds=(now - started).total_seconds(), **fields
    )


def training_run_execute(*, run_id: int, task_id: str = "", worker: str = "") -> TrainingRun:
    """Train the run's model and register the version; returns the finished run.

    Safe to call again for the same run (a redelivered task): a finished run is left as
    it is, a message that is not the run's own task is ignored, and a run found still
    ``running`` (its previous attempt's worker died) is tried again until it has used
    PENGUIN_TRAINING_MAX_ATTEMPTS attempts, then recorded as failed.
    """
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if not run.is_active:
            logger.info("run %s already %s; nothing to do", run_id, run.status)
            return run
        if task_id and run.task_id and task_id != run.task_id:
            logger.warning("ignoring task %s for run %s, which belongs to task %s", task_id, run_id, run.task_id)
            return run
        if run.status == TrainingRun.Status.RUNNING:
            limit = settings.PENGUIN_TRAINING_MAX_ATTEMPTS
            if run.attempts >= limit:
                finish(
                    run_id,
                    status=TrainingRun.Status.FAILED,
                    error=(
                        f"the worker stopped {run.attempts} times while training this run (killed, out of memory "
                        f"or shut down), so it was not tried again (PENGUIN_TRAINING_MAX_ATTEMPTS={limit}). "
                        "Check the worker's log and memory; smaller params may help."
                    ),
                )
                return TrainingRun.objects.get(pk=run_id)
            logger.warning("run %s: attempt %s was lost with its worker; trying again", run_id, run.attempts)
        run.status = TrainingRun.Status.RUNNING
        run.started_at = timezone.now()
        run.attempts += 1
        if task_id:
            run.task_id = task_id
        run.worker = worker
        run.save(update_fields=["status", "started_at", "attempts", "task_id", "worker"])

    started = time.perf_counter()
    try:
        dataset = dataset_load(run.data_path)
        TrainingRun.objects.filter(pk=run_id).update(data_sha256=dataset.sha256)
        with memory_ceiling(settings.PENGUIN_WORKER_MAX_MEMORY_MB):
            result = train(
                algorithm=run.algorithm,
                dataset=dataset,
                params=run.params,
                test_size=run.test_size,
                seed=run.seed,
                split_seed=run.split_seed,
            )
        identical = identical_version_find(model_name=run.model_name, result=result)
        if identical is not None:
            note = (
                f"identical to v{identical.number}: the trained artifact is byte for byte the same, "
                "so no new version was registered"
            )
            finish(
                run_id,
                status=TrainingRun.Status.SUCCEEDED,
                version=identical,
                identical=True,
                activated=False,
                activation_note=note,
            )
            logger.info("run %s: %s %s", run_id, run.model_name, note)
            return TrainingRun.objects.get(pk=run_id)
        promotion = promotion_decide(model_name=run.model_name, result=result, dataset=dataset, policy=run.activation)
        activate, note = promotion.activate, promotion.note
        version = model_version_register(
            model_name=run.model_name,
            pipeline=result.pipeline,
            info=new_version_info(
                result,
                extra_files={
                    "confusion_matrix.png": confusion_matrix_png(result, f"{run.model_name} ({run.algorithm})")
                },
                evaluation=promotion.evaluation,
            ),
            activate=activate,
            activation_note=note,
            user=run.triggered_by,
            triggered_by=f"{run.trigger} run {run.pk}" + (f" by {run.triggered_by}" if run.triggered_by else ""),
        )
    except (DatasetError, ParamError) as exc:
        finish(run_id, status=TrainingRun.Status.FAILED, error=str(exc))
    except Exception as exc:
        logger.exception("training run %s failed", run_id)
        finish(run_id, status=TrainingRun.Status.FAILED, error=_describe_failure(exc))
    else:
        finish(run_id, status=TrainingRun.Status.SUCCEEDED, version=version, activated=activate, activation_note=note)
        logger.info("run %s trained %s in %.2fs (%s)", run_id, version, time.perf_counter() - started, note)
    return TrainingRun.objects.get(pk=run_id)


def _describe_failure(exc: BaseException) -> str:
    from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

    if isinstance(exc, MemoryCeilingExceeded | MemoryError):
        return (
            f"training needed more memory than the worker's ceiling of {settings.PENGUIN_WORKER_MAX_MEMORY_MB} MB "
            f"(PENGUIN_WORKER_MAX_MEMORY_MB; the process had {resident_mb():.0f} MB when it was stopped); "
            "train with smaller params (fewer or shallower estimators, fewer rows per estimator) or raise the ceiling"
        )
    if isinstance(exc, SoftTimeLimitExceeded):
        return (
            f"training took longer than the soft time limit of {_soft_time_limit():g}s "
            "(PENGUIN_TRAINING_SOFT_TIME_LIMIT) and was stopped; train with smaller params or raise the limit"
        )
    if isinstance(exc, TimeLimitExceeded):
        limit = exc.args[0] if exc.args else settings.CELERY_TASK_TIME_LIMIT
        return (
            f"training was killed at the hard time limit of {limit:g}s "
            "(PENGUIN_TRAINING_TIME_LIMIT); train with smaller params or raise the limits"
        )
    if isinstance(exc, OSError):
        return (
            f"could not write the model files: {exc.strerror or exc} "
            "(check that PENGUIN_ARTIFACTS_DIR is writable and has space)"
        )
    return f"{type(exc).__name__}: {exc}"


def _soft_time_limit() -> float:
    """The soft limit of the task running now (it may be set per task), else the setting's."""
    from celery import current_task

    limits = getattr(getattr(current_task, "request", None), "timelimit", None) or (None, None)
    return limits[1] or settings.CELERY_TASK_SOFT_TIME_LIMIT


def training_run_abort(*, run_id: int, exc: BaseException) -> bool:
    """Record a run as failed because its task failed outside the trainer's own handling.

    Called by the task's failure hook (a hard time limit, a database error mid-run). A run
    that already finished is left alone. Returns whether the run was changed.
    """
    run = TrainingRun.objects.filter(pk=run_id, status__in=TrainingRun.ACTIVE_STATUSES).first()
    if run is None:
        return False
    finish(run_id, status=TrainingRun.Status.FAILED, error=_describe_failure(exc))
    return True


def stale_after_seconds(time_limit: float | None = None) -> float:
    """How long a run may stay ``running`` before it is certainly dead.

    A worker kills a task at its hard time limit (``time_limit``, the worker's own when it
    is known, else PENGUIN_TRAINING_TIME_LIMIT), so a run started longer ago than that
    (plus a minute's grace for registering the version) has no worker left.
    """
    return float((time_limit or settings.CELERY_TASK_TIME_LIMIT) + 60)


def training_run_fail_stale(
    *,
    older_than_seconds: float | None = None,
    queued_older_than_seconds: float | None = None,
    restarted_worker: str = "",
    time_limit: float | None = None,
) -> list[int]:
    """The recovery sweep: fail runs whose worker or message is gone; returns their ids.

    A run ``running`` since before ``older_than_seconds`` (default: the hard time limit
    plus a minute) lost its worker; so did one ``running`` on ``restarted_worker``, the node
    name of a worker that is starting now (its previous process is gone, whatever its age).
    Queued runs are left alone unless ``queued_older_than_seconds`` is given: a queued
    message normally waits in the broker until a worker takes it, and only an operator
    knows when it was lost (broker wiped).
    """
    now = timezone.now()
    age = stale_after_seconds(time_limit) if older_than_seconds is None else older_than_seconds
    lost = Q(started_at__lt=now - timedelta(seconds=age))
    if restarted_worker:
        lost |= Q(worker=restarted_worker)
    failed: list[int] = []
    for run in TrainingRun.objects.filter(lost, status=TrainingRun.Status.RUNNING):
        started = run.started_at.strftime("%Y-%m-%d %H:%M:%S")
        error = (
            f"the worker stopped before the run finished (attempt {run.attempts}, started {started} UTC) "
            "and nothing took it over; start it again"
        )
        if _finish_if_status(run.pk, TrainingRun.Status.RUNNING, error):
            failed.append(run.pk)
    if queued_older_than_seconds is not None:
        queued_cutoff = now - timedelta(seconds=queued_older_than_seconds)
        for run in TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED, queued_at__lt=queued_cutoff):
            error = "no worker took the run from the queue (the message was lost); start it again"
            if _finish_if_status(run.pk, TrainingRun.Status.QUEUED, error):
                failed.append(run.pk)
    for run_id in failed:
        logger.warning("training run %s recorded as failed by the recovery sweep", run_id)
    return failed


def _finish_if_status(run_id: int, status: str, error: str) -> bool:
    """Fail the run only if it is still in ``status`` (it may have moved on meanwhile)."""
    now = timezone.now()
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id, status=status).first()
        if run is None:
            return False
        started = run.started_at or run.queued_at
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.FAILED,
            error=error,
            finished_at=now,
            duration_seconds=(now - started).total_seconds(),
        )
    return True
