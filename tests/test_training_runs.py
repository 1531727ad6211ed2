"""Training runs: the one service every door uses, without a worker process.

Queueing, the in-process path, one run per model, failures a person can act on, the
promotion policy both ways, redelivery, worker loss and the recovery sweep.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from classifier.models import MLModel, ModelVersion
from tests.support.models import register_result
from training.models import TrainingRun
from training.services import runs
from training.services.runs import TrainingConflict, TrainingQueueUnavailable, training_run_create
from training.start import training_run_retrain, training_run_start
from training.tasks import recover_lost_runs, train_model_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down(monkeypatch, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False

    def refuse(**kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(train_model_task, "apply_async", refuse)


def command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


# --- the in-process path --------------------------------------------------------------------


def test_without_a_broker_a_run_trains_in_process_and_records_everything(staff_user):
    run = training_run_start(
        algorithm="knn", params={"n_neighbors": 7}, trigger=TrainingRun.Trigger.API, user=staff_user
    )
    assert run.status == TrainingRun.Status.SUCCEEDED
    assert run.version.number == 1 and run.version.params["n_neighbors"] == 7
    assert run.activated and run.activation_note.startswith("activated")
    assert run.attempts == 1 and run.error == ""
    assert run.started_at >= run.queued_at and run.finished_at >= run.started_at
    assert run.duration_seconds > 0
    assert len(run.data_sha256) == 64 and run.data_path.endswith("penguins.csv")
    assert run.triggered_by == staff_user and run.task_id == ""
    assert run.version.triggered_by == f"api run {run.pk} by staff"
    assert MLModel.objects.get(name="knn").active_version == run.version


def test_train_model_trains_in_the_foreground_even_when_a_broker_is_configured(with_broker):
    output = command("train_model", "knn")
    assert with_broker == []
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.SUCCEEDED and run.trigger == "command"
    assert "knn v1 trained in" in output


# --- queueing -------------------------------------------------------------------------------


def test_a_queued_run_is_sent_to_the_broker_only_after_the_transaction_commits(
    with_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        output = command("train_model", "knn", "--async")
        run = TrainingRun.objects.get()
        assert run.status == TrainingRun.Status.QUEUED and with_broker == []
    assert f"queued run {run.pk} for knn" in output
    for callback in callbacks:
        callback()
    assert with_broker == [{"args": [run.pk], "task_id": run.task_id, "retry": False}]
    assert len(run.task_id) == 36


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_is_down_fails_the_run_and_says_to_try_again(broker_down):
    with pytest.raises(TrainingQueueUnavailable, match="broker is unavailable"):
        training_run_start(algorithm="knn")
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.FAILED
    assert "broker is unavailable (OperationalError). Try again later." in run.error
    assert run.finished_at is not None
    # The failed run does not block the next attempt.
    with pytest.raises(CommandError, match="broker is unavailable"):
        command("train_model", "knn", "--async")


def test_a_broker_failure_after_the_callers_transaction_commits_is_recorded_not_raised(
    broker_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            run = training_run_start(algorithm="knn")
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and "broker is unavailable" in run.error


# --- one run per model ----------------------------------------------------------------------


def test_a_second_run_for_the_same_model_is_refused_while_one_is_queued(with_broker):
    first = training_run_start(algorithm="knn")
    with pytest.raises(TrainingConflict, match=rf"already queued or running \(run {first.pk}, queued\)"):
        training_run_start(algorithm="knn", params={"n_neighbors": 3})
    with pytest.raises(CommandError, match="already queued or running"):
        command("train_model", "knn", "--async")
    assert training_run_start(algorithm="knn", model_name="knn-other").status == TrainingRun.Status.QUEUED
    TrainingRun.objects.filter(pk=first.pk).update(status=TrainingRun.Status.FAILED)
    assert training_run_start(algorithm="knn").status == TrainingRun.Status.QUEUED


def test_the_database_itself_refuses_two_active_runs_for_one_model():
    training_run_create(algorithm="knn")
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRun.objects.create(model_name="knn", algorithm="knn", data_path="x", trigger="api")


# --- failures -------------------------------------------------------------------------------


def test_a_failing_run_records_an_error_a_person_can_act_on(tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text("species,island\nAdelie,Torgersen\n")
    run = training_run_start(algorithm="knn", data_path=str(data))
    assert run.status == TrainingRun.Status.FAILED
    assert str(data) in run.error and "column" in run.error
    assert run.version is None and run.finished_at is not None
    assert not ModelVersion.objects.exists()


def test_an_unwritable_artifacts_folder_is_a_clear_failure(settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings.PENGUIN_ARTIFACTS_DIR = blocker
    run = training_run_start(algorithm="knn")
    assert run.status == TrainingRun.Status.FAILED
    assert "PENGUIN_ARTIFACTS_DIR" in run.error


def test_the_soft_time_limit_is_recorded_as_a_clean_failure(monkeypatch):
    def too_slow(**kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(runs, "train", too_slow)
    run = training_run_create(algorithm="knn", task_id="task-1")
    assert train_model_task.apply(args=[run.pk], task_id="task-1").get() == "failed"
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED
    assert "longer than the soft time limit of 600s (PENGUIN_TRAINING_SOFT_TIME_LIMIT)" in run.error


def test_the_hard_time_limit_fails_the_run_through_the_task_failure_hook():
    run = training_run_create(algorithm="knn", task_id="task-1")
    TrainingRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now(), attempts=1)
    train_model_task.on_failure(TimeLimitExceeded(30), "task-1", (run.pk,), {}, None)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED
    assert "killed at the hard time limit of 30s" in run.error


# --- redelivery and lost workers ------------------------------------------------------------


def test_a_redelivered_task_for_a_finished_run_does_nothing():
    run = training_run_start(algorithm="knn")
    assert train_model_task.apply(args=[run.pk], task_id="late-copy").get() == "succeeded"
    assert ModelVersion.objects.count() == 1
    assert TrainingRun.objects.get(pk=run.pk).attempts == 1


def test_a_message_that_is_not_the_runs_own_task_is_ignored():
    run = training_run_create(algorithm="knn", task_id="the-runs-task")
    assert train_model_task.apply(args=[run.pk], task_id="a-stray-copy").get() == "queued"
    assert not ModelVersion.objects.exists()


def test_a_task_for_a_run_that_no_longer_exists_is_dropped():
    assert train_model_task.apply(args=[999999]).get() == "missing"


def test_a_run_whose_worker_died_is_trained_again_when_its_message_comes_back():
    run = training_run_create(algorithm="knn", task_id="task-1")
    TrainingRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now(), attempts=1)
    assert train_model_task.apply(args=[run.pk], task_id="task-1").get() == "succeeded"
    run.refresh_from_db()
    assert run.attempts == 2 and run.version.number == 1


def test_a_run_that_kills_its_worker_again_and_again_ends_failed(settings):
    settings.PENGUIN_TRAINING_MAX_ATTEMPTS = 3
    run = training_run_create(algorithm="knn", task_id="task-1")
    TrainingRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now(), attempts=3)
    assert train_model_task.apply(args=[run.pk], task_id="task-1").get() == "failed"
    run.refresh_from_db()
    assert "the worker stopped 3 times" in run.error and "PENGUIN_TRAINING_MAX_ATTEMPTS=3" in run.error
    assert not ModelVersion.objects.exists()


def test_the_recovery_sweep_fails_only_runs_no_worker_can_still_be_running(settings):
    settings.CELERY_TASK_TIME_LIMIT = 100
    long_ago = timezone.now() - timedelta(seconds=161)
    lost = training_run_create(algorithm="knn", model_name="lost", task_id="a")
    recent = training_run_create(algorithm="knn", model_name="recent", task_id="b")
    waiting = training_run_create(algorithm="knn", model_name="waiting", task_id="c")
    TrainingRun.objects.filter(pk=lost.pk).update(status="running", started_at=long_ago, attempts=1)
    TrainingRun.objects.filter(pk=recent.pk).update(status="running", started_at=timezone.now(), attempts=1)
    TrainingRun.objects.filter(pk=waiting.pk).update(queued_at=long_ago)

    recover_lost_runs(sender=None)  # what every worker does when it starts

    statuses = dict(TrainingRun.objects.values_list("model_name", "status"))
    assert statuses == {"lost": "failed", "recent": "running", "waiting": "queued"}
    assert "the worker stopped before the run finished" in TrainingRun.objects.get(pk=lost.pk).error
    output = command("recover_training_runs", "--queued-older-than", "60")
    assert output == f"recorded 1 run(s) as failed: {waiting.pk}\n"
    assert "no worker took the run" in TrainingRun.objects.get(pk=waiting.pk).error
    assert command("recover_training_runs") == "no lost runs\n"


# --- retraining -----------------------------------------------------------------------------


def test_retraining_repeats_the_last_good_runs_settings():
    first = training_run_start(algorithm="knn", params={"n_neighbors": 9}, seed=7, split_seed=5, test_size=0.3)
    again = training_run_retrain(model_name="knn", trigger=TrainingRun.Trigger.ADMIN)
    assert (again.params, again.seed, again.split_seed, again.test_size) == (first.params, 7, 5, 0.3)
    assert again.trigger == "admin" and again.status == TrainingRun.Status.SUCCEEDED
    # The same settings on the same data train the same bytes: no second version.
    assert again.version == first.version and again.activation_note.startswith("identical to v1")


def test_retraining_a_model_the_catalogue_does_not_know_is_refused(trained_results):
    from training.catalogue import ParamError

    register_result("mystery", trained_results["knn"])
    MLModel.objects.filter(name="mystery").update(algorithm="kneighbors")
    with pytest.raises(ParamError, match="not in the catalogue"):
        training_run_retrain(model_name="mystery", trigger=TrainingRun.Trigger.ADMIN)
    assert not TrainingRun.objects.exists()
