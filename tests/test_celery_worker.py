"""A real Celery worker (prefork, one child) against Redis and PostgreSQL.

The worker is a subprocess started once for this module, pointed at pytest-django's test
database (tests here are transactional, so the worker sees their rows) and at an artifacts
folder shared with the test process. Runs are started through the API and through the
admin, followed to their outcome with a deadline, and the new version must serve.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from classifier.models import MLModel
from classifier.serving import loaded_cache
from classifier.serving_registry import live_registry
from penguinsite.celery import app
from tests.support.data import GENTOO
from tests.support.models import broker_url, register_result, suite_database_url
from tests.support.processes import log_tail, wait_for
from tests.support.service import celery_worker
from training.models import TrainingRun
from training.services.runs import training_run_create
from training.start import training_run_start
from training.tasks import train_model_task

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

WORKER_START_SECONDS = 60
RUN_SECONDS = 60
# Low, so that the test of a run killing its worker ends after two kills.
MAX_ATTEMPTS = 2
# Long enough that a kill or a time limit always lands mid-training.
ENDLESS = {"algorithm": "gradientboosting", "params": {"n_estimators": 50_000}}


@dataclass
class Worker:
    process: subprocess.Popen
    node: str
    artifacts: Path
    log: Path

    def log_tail(self) -> str:
        return log_tail(self.log)

    def child_pid_running(self, task_id: str) -> int | None:
        """The pid of the pool process running ``task_id``, as the worker reports it."""
        active = app.control.inspect(destination=[self.node], timeout=1.0).active() or {}
        for task in active.get(self.node, []):
            if task["id"] == task_id:
                return task["worker_pid"]
        return None


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    """A worker on pytest-django's test database, with an artifacts folder the test process shares."""
    folder = tmp_path_factory.mktemp("worker")
    artifacts, log = folder / "artifacts", folder / "worker.log"
    node = f"penguin-test-{uuid.uuid4().hex[:8]}@localhost"
    env = {
        **os.environ,
        "DATABASE_URL": suite_database_url(),
        "CELERY_BROKER_URL": broker_url(),
        "PENGUIN_ARTIFACTS_DIR": str(artifacts),
        "PENGUIN_TRAINING_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "PYTHONUNBUFFERED": "1",
    }
    with celery_worker(env, log=log, node=node, timeout=WORKER_START_SECONDS) as process:
        running = Worker(process=process, node=node, artifacts=artifacts, log=log)
        wait_for(
            lambda: app.control.ping(destination=[node], timeout=0.5),
            timeout=WORKER_START_SECONDS,
            what=f"the Celery worker {node} to answer a ping",
        )
        yield running


@pytest.fixture
def in_worker(worker, settings):
    """Training goes to the worker; the test process serves from the worker's artifacts."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    if worker.artifacts.exists():
        shutil.rmtree(worker.artifacts)  # the database is emptied after each test; so are the files
    settings.PENGUIN_ARTIFACTS_DIR = worker.artifacts
    loaded_cache.clear()
    live_registry.invalidate()
    return worker


def run_until(worker: Worker, run_id: int, until, *, while_waiting=None) -> TrainingRun:
    """Poll the run until ``until(run)`` holds; fail with the worker's log at the deadline."""

    def reached():
        run = TrainingRun.objects.select_related("version").get(pk=run_id)
        if until(run):
            return run
        if while_waiting is not None:
            while_waiting()
        return None

    try:
        return wait_for(reached, timeout=RUN_SECONDS, what=f"run {run_id}", interval=0.1)
    except AssertionError as exc:
        pytest.fail(f"{exc}; worker log:\n{worker.log_tail()}")


def finished(run: TrainingRun) -> bool:
    return not run.is_active


def classify_gentoo(client) -> str:
    response = client.post("/classify/knn", GENTOO, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["species_name"] == "Gentoo"
    return response["X-Model-Version"]


def test_a_run_started_through_the_api_is_trained_by_the_worker_while_classify_keeps_answering(
    in_worker, staff_client, api_client, trained_results
):
    register_result("knn", trained_results["knn"])
    assert classify_gentoo(api_client) == "1"

    response = staff_client.post(
        "/api/v1/training-runs/", {"algorithm": "knn", "params": {"n_neighbors": 7}}, format="json"
    )
    assert response.status_code == 202, response.content
    body = response.json()
    # An idle worker may have taken the run before the answer was written.
    assert body["status"] in ("queued", "running") and body["version"] is None and body["model_name"] == "knn"

    served_meanwhile: list[str] = []

    def poll_api() -> dict:
        detail = staff_client.get(f"/api/v1/training-runs/{body['id']}/")
        assert detail.status_code == 200
        served_meanwhile.append(classify_gentoo(api_client))
        return detail.json()

    def run_finished() -> dict | None:
        run = poll_api()
        return run if run["status"] not in ("queued", "running") else None

    try:
        run = wait_for(run_finished, timeout=RUN_SECONDS, what=f"run {body['id']}", interval=0.1)
    except AssertionError as exc:
        pytest.fail(f"{exc}; worker log:\n{in_worker.log_tail()}")

    assert run["status"] == "succeeded", run["error"]
    assert run["version"] == 2 and run["activated"] is True and run["duration_seconds"] > 0
    assert run["started_at"] and run["finished_at"] and run["error"] == ""
    assert served_meanwhile and set(served_meanwhile) <= {"1", "2"}
    assert classify_gentoo(api_client) == "2"
    version = MLModel.objects.get(name="knn").active_version
    assert version.params["n_neighbors"] == 7 and (in_worker.artifacts / version.artifact_path).is_file()
    listed = staff_client.get("/api/v1/training-runs/").json()
    assert body["id"] in [item["id"] for item in listed["results"]]


def test_a_retrain_started_from_the_admin_is_trained_by_the_worker(
    in_worker, admin_client, admin_user, api_client, trained_results
):
    knn = register_result("knn", trained_results["knn"])
    response = admin_client.post(
        "/admin/classifier/mlmodel/", {"action": "retrain_selected", "_selected_action": [knn.model_id]}, follow=True
    )
    run = TrainingRun.objects.get()
    assert f"Queued training run {run.pk} for knn" in " ".join(str(m) for m in response.context["messages"])

    run = run_until(in_worker, run.pk, finished, while_waiting=lambda: classify_gentoo(api_client))
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert (run.trigger, run.triggered_by, run.version.number, run.attempts) == ("admin", admin_user, 2, 1)
    assert run.version.triggered_by == f"admin run {run.pk} by admin"
    assert classify_gentoo(api_client) == "2"
    page = admin_client.get(f"/admin/training/trainingrun/{run.pk}/change/").content.decode()
    assert "succeeded" in page and "knn v2</a>" in page and 'http-equiv="refresh"' not in page
    picture = admin_client.get(f"/admin/classifier/modelversion/{run.version.pk}/confusion-matrix.png")
    assert picture.status_code == 200 and picture["Content-Type"] == "image/png"


def test_a_run_that_fails_in_the_worker_records_its_error(in_worker, tmp_path):
    data = tmp_path / "broken.csv"
    data.write_text("species,island\nAdelie,Torgersen\n")
    run = training_run_start(algorithm="knn", data_path=str(data))
    assert run.status == TrainingRun.Status.QUEUED
    run = run_until(in_worker, run.pk, finished)
    assert run.status == TrainingRun.Status.FAILED
    assert str(data) in run.error and run.version is None and run.finished_at is not None


def test_the_soft_time_limit_in_the_worker_is_a_clean_failure(in_worker):
    run = training_run_create(**ENDLESS, task_id=str(uuid.uuid4()))
    train_model_task.apply_async(args=[run.pk], task_id=run.task_id, soft_time_limit=1, time_limit=60)
    run = run_until(in_worker, run.pk, finished)
    assert run.status == TrainingRun.Status.FAILED
    assert run.error.startswith("training took longer than the soft time limit of 1s"), run.error
    assert not MLModel.objects.exists()


def test_a_run_that_kills_its_worker_is_tried_again_then_failed(in_worker):
    run = training_run_start(**ENDLESS, model_name="doomed")
    killed: list[int] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        run_until(in_worker, run.pk, lambda r, n=attempt: r.status == "running" and r.attempts == n)
        pid = wait_for(
            lambda: (found := in_worker.child_pid_running(run.task_id)) not in (None, *killed) and found,
            timeout=RUN_SECONDS,
            what=f"attempt {attempt} in a pool process:\n{in_worker.log_tail()}",
        )
        os.kill(pid, signal.SIGKILL)  # the pool process our worker started: out of memory, say
        killed.append(pid)

    run = run_until(in_worker, run.pk, finished)
    assert run.status == TrainingRun.Status.FAILED and run.attempts == MAX_ATTEMPTS
    assert f"the worker stopped {MAX_ATTEMPTS} times" in run.error
    assert in_worker.process.poll() is None  # the worker itself carries on
