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
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings

from classifier.models import MLModel
from classifier.serving import loaded_cache
from classifier.serving_registry import live_registry
from penguinsite.celery import app
from training.models import TrainingRun
from training.services.runs import training_run_create
from training.start import training_run_start
from training.tasks import train_model_task

from .conftest import GENTOO, REPO, broker_url, register_result

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

WORKER_START_SECONDS = 60
RUN_SECONDS = 60
STOP_SECONDS = 15
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

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no worker log)"

    def child_pid_running(self, task_id: str) -> int | None:
        """The pid of the pool process running ``task_id``, as the worker reports it."""
        active = app.control.inspect(destination=[self.node], timeout=1.0).active() or {}
        for task in active.get(self.node, []):
            if task["id"] == task_id:
                return task["worker_pid"]
        return None


def database_url() -> str:
    """The URL of pytest-django's test database, for the worker's DATABASE_URL."""
    db = django_settings.DATABASES["default"]
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    return f"postgres://{auth}@{host}:{db.get('PORT') or 5432}/{db['NAME']}"


def stop(process: subprocess.Popen) -> None:
    """Warm shutdown, then the whole process group if it does not stop in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_SECONDS)


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    folder = tmp_path_factory.mktemp("worker")
    artifacts, log = folder / "artifacts", folder / "worker.log"
    node = f"penguin-test-{uuid.uuid4().hex[:8]}@localhost"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url(),
        "PENGUIN_ARTIFACTS_DIR": str(artifacts),
        "PENGUIN_TRAINING_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "celery", "-A", "penguinsite", "worker", "-l", "info", "-n", node]
    command += ["-P", "prefork", "--concurrency", "1", "--without-mingle", "--without-gossip"]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    running = Worker(process=process, node=node, artifacts=artifacts, log=log)
    try:
        deadline = time.monotonic() + WORKER_START_SECONDS
        while not app.control.ping(destination=[node], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not start:\n{running.log_tail()}")
        yield running
    finally:
        stop(process)


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


def wait_for(worker: Worker, run_id: int, until, *, while_waiting=None) -> TrainingRun:
    """Poll the run until ``until(run)`` holds; fail with the worker's log at the deadline."""
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        run = TrainingRun.objects.select_related("version").get(pk=run_id)
        if until(run):
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} is still {run.status} after {RUN_SECONDS}s; worker log:\n{worker.log_tail()}")
        if while_waiting is not None:
            while_waiting()
        time.sleep(0.1)  # poll interval


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
    assert body["status"] == "queued" and body["version"] is None and body["model_name"] == "knn"

    served_meanwhile: list[str] = []

    def poll_api() -> dict:
        detail = staff_client.get(f"/api/v1/training-runs/{body['id']}/")
        assert detail.status_code == 200
        served_meanwhile.append(classify_gentoo(api_client))
        return detail.json()

    deadline = time.monotonic() + RUN_SECONDS
    while (run := poll_api())["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            pytest.fail(f"run {body['id']} is still {run['status']}; worker log:\n{in_worker.log_tail()}")
        time.sleep(0.1)  # poll interval

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

    run = wait_for(in_worker, run.pk, finished, while_waiting=lambda: classify_gentoo(api_client))
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
    run = wait_for(in_worker, run.pk, finished)
    assert run.status == TrainingRun.Status.FAILED
    assert str(data) in run.error and run.version is None and run.finished_at is not None


def test_the_soft_time_limit_in_the_worker_is_a_clean_failure(in_worker):
    run = training_run_create(**ENDLESS, task_id=str(uuid.uuid4()))
    train_model_task.apply_async(args=[run.pk], task_id=run.task_id, soft_time_limit=1, time_limit=60)
    run = wait_for(in_worker, run.pk, finished)
    assert run.status == TrainingRun.Status.FAILED
    assert run.error.startswith("training took longer than the soft time limit of 1s"), run.error
    assert not MLModel.objects.exists()


def test_a_run_that_kills_its_worker_is_tried_again_then_failed(in_worker):
    run = training_run_start(**ENDLESS, model_name="doomed")
    killed: list[int] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        wait_for(in_worker, run.pk, lambda r, n=attempt: r.status == "running" and r.attempts == n)
        deadline = time.monotonic() + RUN_SECONDS
        while (pid := in_worker.child_pid_running(run.task_id)) in (None, *killed):
            assert time.monotonic() < deadline, in_worker.log_tail()
        os.kill(pid, signal.SIGKILL)  # the pool process our worker started: out of memory, say
        killed.append(pid)

    run = wait_for(in_worker, run.pk, finished)
    assert run.status == TrainingRun.Status.FAILED and run.attempts == MAX_ATTEMPTS
    assert f"the worker stopped {MAX_ATTEMPTS} times" in run.error
    assert in_worker.process.poll() is None  # the worker itself carries on
