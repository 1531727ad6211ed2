"""Training runs over API v1: start (202), poll, list; staff only; clear 400/409/503 errors."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError
from rest_framework.test import APIClient

from classifier.models import ModelVersion
from tests.support.models import ml_engineers_group
from training import tasks
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

RUN_FIELDS = {
    "id",
    "status",
    "model_name",
    "algorithm",
    "params",
    "error",
    "queued_at",
    "started_at",
    "finished_at",
    "duration_seconds",
    "version",
    "activated",
    "activation_note",
    "trigger",
    "triggered_by",
}


def start(client, body, slash="/"):
    return client.post(f"/api/v1/training-runs{slash}", data=body, format="json")


def test_without_a_broker_a_run_trains_before_the_answer_and_reports_its_version(staff_client):
    response = start(staff_client, {"algorithm": "knn", "params": {"n_neighbors": 7}})
    assert response.status_code == 202, response.content
    body = response.json()
    assert RUN_FIELDS <= set(body)
    assert body["status"] == "succeeded"
    assert body["model_name"] == "knn"
    assert body["algorithm"] == "knn"
    assert body["params"] == {"n_neighbors": 7}
    assert body["version"] == 1
    assert body["activated"] is True
    assert body["trigger"] == "api"
    assert body["triggered_by"] == "staff"
    assert body["error"] == ""
    assert body["duration_seconds"] >= 0
    assert response["Location"] == f"/api/v1/training-runs/{body['id']}"
    version = ModelVersion.objects.get(model__name="knn", number=1)
    assert version.params["n_neighbors"] == 7


def test_with_a_broker_a_run_is_queued_and_sent_to_a_worker_after_commit(
    staff_client, with_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = start(
            staff_client,
            {"algorithm": "randomforest", "params": {"n_estimators": 20}, "name": "rf-small", "activate": "never"},
            slash="",
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued"
    assert body["model_name"] == "rf-small"
    assert body["version"] is None
    assert body["started_at"] is None
    assert TrainingRun.objects.get(pk=body["id"]).activation == "never"
    assert with_broker == [
        {"args": [body["id"]], "task_id": TrainingRun.objects.get(pk=body["id"]).task_id, "retry": False}
    ]


def test_a_second_run_for_the_same_model_while_one_is_queued_is_409(staff_client, with_broker):
    assert start(staff_client, {"algorithm": "knn"}).status_code == 202
    response = start(staff_client, {"algorithm": "knn", "params": {"n_neighbors": 3}})
    assert response.status_code == 409
    assert response.json()["code"] == "training_conflict"
    assert TrainingRun.objects.count() == 1
    assert start(staff_client, {"algorithm": "knn", "name": "knn-other"}).status_code == 202


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_is_down_answers_503_and_the_run_is_recorded_failed(settings, monkeypatch, django_user_model):
    settings.CELERY_TASK_ALWAYS_EAGER = False

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(tasks.train_model_task, "apply_async", refuse)
    client = APIClient()
    ops = django_user_model.objects.create_user("ops", is_staff=True)
    ops.groups.add(ml_engineers_group())
    client.force_authenticate(ops)
    response = start(client, {"algorithm": "knn"})
    assert response.status_code == 503
    assert response.json()["code"] == "queue_unavailable"
    run = TrainingRun.objects.get()
    assert run.status == "failed"
    assert "broker" in run.error


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "algorithm"),
        ({"algorithm": "deepnet"}, "algorithm"),
        ({"algorithm": "knn", "params": {"n_neighbours": 3}}, "n_neighbours"),
        ({"algorithm": "knn", "params": {"n_neighbors": 0}}, "n_neighbors"),
        ({"algorithm": "knn", "params": [1, 2]}, "params"),
        ({"algorithm": "knn", "test_size": 0.9}, "test_size"),
        ({"algorithm": "knn", "name": "Bad Name!"}, "name"),
        ({"algorithm": "knn", "activate": "sometimes"}, "activate"),
        ({"algorithm": "knn", "seed": -1}, "seed"),
    ],
)
def test_a_bad_request_is_400_naming_the_field_and_records_no_run(staff_client, body, field):
    response = start(staff_client, body)
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert TrainingRun.objects.count() == 0


def test_runs_list_and_detail_poll_the_outcome(staff_client):
    first = start(staff_client, {"algorithm": "knn"}).json()
    second = start(staff_client, {"algorithm": "logisticregression"}).json()
    listing = staff_client.get("/api/v1/training-runs")
    assert listing.status_code == 200
    assert [run["id"] for run in listing.json()["results"]] == [second["id"], first["id"]]
    filtered = staff_client.get("/api/v1/training-runs?model=knn&status=succeeded").json()["results"]
    assert [run["id"] for run in filtered] == [first["id"]]
    detail = staff_client.get(f"/api/v1/training-runs/{first['id']}")
    assert detail.status_code == 200
    assert detail.json()["status"] == "succeeded"
    assert detail.json()["version"] == 1
    assert staff_client.get("/api/v1/training-runs/999999").status_code == 404


@pytest.mark.parametrize("method,url", [("post", "/api/v1/training-runs/"), ("get", "/api/v1/training-runs"),
                                        ("get", "/api/v1/training-runs/1")])  # fmt: skip
def test_training_runs_refuse_anonymous_with_401_and_non_staff_with_403(api_client, user_client, method, url):
    anonymous = getattr(api_client, method)(url, data={"algorithm": "knn"}, format="json")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Token")
    assert getattr(user_client, method)(url, data={"algorithm": "knn"}, format="json").status_code == 403
    assert TrainingRun.objects.count() == 0
