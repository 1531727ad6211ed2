"""API v1 registry: models, versions, activate (promote/rollback) and sync."""

from __future__ import annotations

import json
import pickle

import pytest

from classifier.models import ModelActivation, Prediction
from tests.support.data import ADELIE, GENTOO
from tests.support.models import register_result

pytestmark = pytest.mark.django_db


def post(client, url, body=None):
    return client.post(url, data=json.dumps(body or {}), content_type="application/json")


def test_models_list_is_empty_before_training(api_client):
    response = api_client.get("/api/v1/models")
    assert response.status_code == 200
    assert response.json() == []


def test_models_list_shows_each_model_with_its_active_version_and_metrics(api_client, default_models):
    response = api_client.get("/api/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert [item["name"] for item in body] == sorted(default_models)
    for item in body:
        version = default_models[item["name"]]
        assert item["active_version"]["number"] == 1
        assert item["active_version"]["status"] == "active"
        assert item["active_version"]["metrics"] == version.metrics
        assert item["active_version"]["sha256"] == version.sha256
        assert item["version_count"] == 1
        assert item["predict_endpoint"] == f"POST /api/v1/models/{item['name']}/predict"


def test_models_list_filters_by_algorithm(api_client, default_models):
    body = api_client.get("/api/v1/models?algorithm=svm").json()
    assert [item["name"] for item in body] == ["svm"]


def test_model_detail_and_unknown_model(api_client, knn_model):
    response = api_client.get("/api/v1/models/knn")
    assert response.status_code == 200
    assert response.json()["active_version"]["number"] == 1
    assert api_client.get("/api/v1/models/knn/").status_code == 200
    missing = api_client.get("/api/v1/models/nope")
    assert missing.status_code == 404
    assert missing.json()["code"] == "model_not_found"


def test_versions_list_shows_params_metrics_hash_source_and_status(api_client, trained_results):
    first = register_result("knn", trained_results["knn"])
    second = register_result("knn", trained_results["knn"], activate=False)
    response = api_client.get("/api/v1/models/knn/versions")
    assert response.status_code == 200
    body = response.json()
    assert [item["number"] for item in body] == [2, 1]
    by_number = {item["number"]: item for item in body}
    assert by_number[1]["status"] == "active"
    assert by_number[2]["status"] == "inactive"
    assert by_number[2]["sha256"] == second.sha256
    assert by_number[1]["params"] == first.params
    assert by_number[1]["metrics"] == first.metrics
    assert by_number[1]["source"] == "trained"
    assert by_number[1]["runtime"] in {"sklearn", "onnx"}
    assert by_number[1]["live_accuracy"] == {"labelled": 0, "correct": 0, "accuracy": None}


def test_versions_of_an_unknown_model_is_404(api_client, db):
    response = api_client.get("/api/v1/models/nope/versions")
    assert response.status_code == 404
    assert response.json()["code"] == "model_not_found"


def test_version_detail_has_report_confusion_matrix_and_live_accuracy_from_feedback(
    api_client, staff_client, knn_model
):
    ids = [
        row["prediction_id"]
        for row in post(api_client, "/api/v1/models/knn/predict", {"instances": [ADELIE, GENTOO, GENTOO]}).json()[
            "predictions"
        ]
    ]
    post(staff_client, f"/api/v1/predictions/{ids[0]}/feedback", {"species": "Adelie"})  # right
    post(staff_client, f"/api/v1/predictions/{ids[1]}/feedback", {"species": 2})  # wrong: it said Gentoo

    response = api_client.get("/api/v1/models/knn/versions/1")
    assert response.status_code == 200
    body = response.json()
    assert body["live_accuracy"] == {"labelled": 2, "correct": 1, "accuracy": 0.5}
    assert body["confusion_matrix"] == knn_model.confusion_matrix
    assert body["classification_report"] == knn_model.classification_report
    listed = api_client.get("/api/v1/models/knn/versions").json()
    assert listed[0]["live_accuracy"] == {"labelled": 2, "correct": 1, "accuracy": 0.5}


def test_unknown_version_is_404_naming_the_version(api_client, knn_model):
    response = api_client.get("/api/v1/models/knn/versions/9")
    assert response.status_code == 404
    assert response.json()["code"] == "version_not_found"
    assert api_client.get("/api/v1/models/knn/versions/abc").status_code == 404


def test_staff_can_roll_back_and_promote_and_it_is_recorded_with_who_and_when(
    api_client, staff_client, staff_user, trained_results
):
    register_result("knn", trained_results["knn"])
    register_result("knn", trained_results["knn"])

    response = post(staff_client, "/api/v1/models/knn/versions/1/activate", {"reason": "v2 looks off"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "knn"
    assert body["version"] == 1
    assert body["previous_version"] == 2
    assert body["activated_by"] == "staff"
    assert body["reason"] == "v2 looks off"
    assert body["activated_at"]

    # The rollback serves immediately.
    assert post(api_client, "/api/v1/models/knn/predict", ADELIE).json()["version"] == 1
    assert api_client.get("/api/v1/models/knn").json()["active_version"]["number"] == 1
    record = ModelActivation.objects.filter(model__name="knn").order_by("-id").first()
    assert record.activated_by == staff_user
    assert record.version.number == 1

    assert post(staff_client, "/api/v1/models/knn/versions/2/activate").status_code == 200
    assert post(api_client, "/api/v1/models/knn/predict", ADELIE).json()["version"] == 2
    detail = api_client.get("/api/v1/models/knn/versions/2").json()
    assert detail["status"] == "active"
    assert detail["activations"][0]["activated_by"] == "staff"


def test_activating_a_broken_version_is_409(staff_client, trained_results, artifacts_dir):
    first = register_result("knn", trained_results["knn"])
    register_result("knn", trained_results["knn"])
    (artifacts_dir / first.artifact_path).unlink()
    assert post(staff_client, "/api/v1/registry/sync").status_code == 200
    response = post(staff_client, "/api/v1/models/knn/versions/1/activate")
    assert response.status_code == 409
    assert response.json()["code"] == "model_unavailable"


def test_sync_reports_added_removed_and_broken_files(staff_client, api_client, db, artifacts_dir, trained_results):
    folder = artifacts_dir / "models"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "forest_model.pkl", "wb") as handle:
        pickle.dump(trained_results["randomforest"].pipeline, handle)
    (folder / "junk_model.pkl").write_bytes(b"not a pickle")

    response = post(staff_client, "/api/v1/registry/sync")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["added"] == ["forest v1"]
    assert body["broken"] == ["junk v1"]
    assert body["removed"] == []

    (folder / "forest_model.pkl").unlink()
    body = post(staff_client, "/api/v1/registry/sync/").json()
    assert body["removed"] == ["forest v1"]
    assert api_client.get("/api/v1/models/forest/versions/1").json()["status"] == "broken"


# --- who may write ----------------------------------------------------------------------------------------


@pytest.fixture
def two_versions(trained_results):
    register_result("knn", trained_results["knn"])
    register_result("knn", trained_results["knn"])


@pytest.mark.parametrize("url", ["/api/v1/models/knn/versions/1/activate", "/api/v1/registry/sync"])
def test_registry_writes_refuse_anonymous_with_401_and_non_staff_with_403(
    api_client, user_client, staff_client, two_versions, url
):
    anonymous = post(api_client, url)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    assert anonymous["WWW-Authenticate"].startswith("Token")
    refused = post(user_client, url)
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert post(staff_client, url).status_code == 200


def test_refused_activation_changes_nothing(api_client, user_client, two_versions):
    post(api_client, "/api/v1/models/knn/versions/1/activate")
    post(user_client, "/api/v1/models/knn/versions/1/activate")
    assert api_client.get("/api/v1/models/knn").json()["active_version"]["number"] == 2
    assert Prediction.objects.count() == 0
