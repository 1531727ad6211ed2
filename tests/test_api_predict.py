"""POST /api/v1/models/<name>/predict: one penguin or a batch, with probabilities, every row logged."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from classifier.models import Prediction
from tests.support.data import ADELIE, CHINSTRAP, DATA, GENTOO, random_penguins
from tests.support.models import register_result, uses_postgres

pytestmark = pytest.mark.django_db

SPECIES = {1: "Adelie", 2: "Chinstrap", 3: "Gentoo"}


def predict(client, name, body, *, query: str = "", slash: str = ""):
    return client.post(
        f"/api/v1/models/{name}/predict{slash}{query}", data=json.dumps(body), content_type="application/json"
    )


def test_predict_one_penguin_answers_species_probabilities_and_the_logged_id(api_client, knn_model):
    response = predict(api_client, "knn", GENTOO)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "knn"
    assert body["version"] == 1
    assert body["count"] == 1
    (row,) = body["predictions"]
    assert row["species_id"] == 3
    assert row["species_name"] == "Gentoo"
    assert set(row["probabilities"]) == {"Adelie", "Chinstrap", "Gentoo"}
    assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    logged = Prediction.objects.get(pk=row["prediction_id"])
    assert logged.endpoint == "predict"
    assert logged.species_id == 3
    assert logged.version.number == 1
    assert logged.probabilities == pytest.approx(row["probabilities"], abs=2e-6)


def test_predict_a_small_batch_answers_each_row_in_input_order(api_client, default_models):
    response = predict(api_client, "randomforest", {"instances": [ADELIE, CHINSTRAP, GENTOO]})
    assert response.status_code == 200, response.content
    rows = response.json()["predictions"]
    assert [row["species_name"] for row in rows] == ["Adelie", "Chinstrap", "Gentoo"]
    assert [row["species_id"] for row in rows] == [1, 2, 3]
    ids = [row["prediction_id"] for row in rows]
    assert len(set(ids)) == 3
    assert list(Prediction.objects.filter(pk__in=ids).order_by("pk").values_list("species_id", flat=True)) == [1, 2, 3]


def test_predict_a_batch_of_10000_with_probabilities_summing_to_one_and_every_row_logged(api_client, trained_results):
    register_result("logreg", trained_results["logisticregression"])  # probabilities that need rounding
    penguins = random_penguins(10_000)
    with CaptureQueriesContext(connection) as queries:
        response = predict(api_client, "logreg", {"instances": penguins})
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    assert body["count"] == 10_000
    rows = body["predictions"]
    assert len(rows) == 10_000
    for row in rows:
        # Six decimals that add up to exactly 1 (as decimals; binary floats may differ by 1e-16).
        assert sum(round(value * 1e6) for value in row["probabilities"].values()) == 1_000_000
        assert SPECIES[row["species_id"]] == row["species_name"]
        assert max(row["probabilities"], key=row["probabilities"].get) == row["species_name"]

    ids = [row["prediction_id"] for row in rows]
    assert len(set(ids)) == 10_000
    assert Prediction.objects.filter(pk__in=ids, endpoint="predict").count() == 10_000
    # Row i of the answer is row i of the request, and the log holds exactly what it said.
    logged = Prediction.objects.in_bulk(ids)
    for penguin, row in zip(penguins, rows):
        kept = logged[row["prediction_id"]]
        assert (kept.species_id, kept.probabilities) == (row["species_id"], row["probabilities"])
        assert (kept.inputs["bill_length_mm"], kept.inputs["year"]) == (penguin["bill_length_mm"], penguin["year"])

    log_writes = ('INSERT INTO "classifier_prediction"', "COPY classifier_prediction")
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(log_writes)]
    if uses_postgres():
        assert len(inserts) == 1  # one COPY
    else:
        # SQLite caps the variables of one statement (999 in Django's SQLite backend), so the
        # 21 typed columns allow 47 rows per INSERT: batched, never one statement per row.
        assert len(inserts) <= 10_000 // (999 // 21) + 1


def test_one_invalid_row_rejects_the_whole_batch_naming_row_and_field_and_logs_nothing(api_client, knn_model):
    penguins = random_penguins(500)
    penguins[137] = {**penguins[137], "island": 4}
    penguins[420] = {key: value for key, value in penguins[420].items() if key != "body_mass_g"}
    response = predict(api_client, "knn", {"instances": penguins})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["errors"]) == {"instances[137].island", "instances[420].body_mass_g"}
    assert "required" in body["errors"]["instances[420].body_mass_g"][0]
    assert Prediction.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"instances": "not a list"}, "instances"),
        ({"instances": []}, "instances"),
        ({"instances": [ADELIE, 7]}, "instances[1]"),
        ([ADELIE], "non_field_errors"),
        ({**ADELIE, "sex": "unknown"}, "sex"),
    ],
)
def test_predict_rejects_malformed_bodies_naming_the_field(api_client, knn_model, body, field):
    response = predict(api_client, "knn", body)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert Prediction.objects.count() == 0


def test_a_batch_over_the_maximum_is_refused_with_413_and_logs_nothing(api_client, knn_model, settings):
    settings.PENGUIN_MAX_BATCH = 100
    response = predict(api_client, "knn", {"instances": [ADELIE] * 101})
    assert response.status_code == 413
    assert response.json()["code"] == "batch_too_large"
    assert "PENGUIN_MAX_BATCH" in response.json()["detail"]
    assert Prediction.objects.count() == 0
    assert predict(api_client, "knn", {"instances": [ADELIE] * 100}).status_code == 200


def test_predict_with_version_scores_with_that_version(api_client, trained_results):
    register_result("knn", trained_results["knn"])
    register_result("knn", trained_results["knn"])
    assert predict(api_client, "knn", ADELIE).json()["version"] == 2
    response = predict(api_client, "knn", ADELIE, query="?version=1")
    assert response.status_code == 200
    assert response.json()["version"] == 1
    logged = Prediction.objects.get(pk=response.json()["predictions"][0]["prediction_id"])
    assert logged.version.number == 1


@pytest.mark.parametrize(("query", "status"), [("?version=9", 404), ("?version=abc", 400), ("?version=0", 400)])
def test_predict_with_a_bad_version_is_a_json_error(api_client, knn_model, query, status):
    response = predict(api_client, "knn", ADELIE, query=query)
    assert response.status_code == status
    assert response.json()["code"]


def test_predict_with_an_unknown_model_is_404_before_the_rows_are_checked(api_client, knn_model):
    response = predict(api_client, "nope", {"instances": "garbage"})
    assert response.status_code == 404
    assert response.json()["code"] == "model_not_found"


def test_a_model_without_predict_proba_says_so_with_409_and_logs_nothing(api_client, db):
    from core.datasets import dataset_load
    from training.trainer import train

    result = train(algorithm="svm", dataset=dataset_load(DATA), params={"probability": False})
    register_result("plain-svm", result)
    response = predict(api_client, "plain-svm", ADELIE)
    assert response.status_code == 409
    assert response.json()["code"] == "no_probabilities"
    assert "probabilities" in response.json()["detail"]
    assert Prediction.objects.count() == 0


def test_predict_answers_with_or_without_a_trailing_slash(api_client, knn_model):
    assert predict(api_client, "knn", ADELIE).status_code == 200
    assert predict(api_client, "knn", ADELIE, slash="/").status_code == 200


def test_predict_is_open_to_anonymous_callers_and_needs_no_csrf_token(knn_model):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    assert predict(client, "knn", ADELIE).status_code == 200


def test_predict_rejects_a_body_that_is_not_json(api_client, knn_model):
    response = api_client.post("/api/v1/models/knn/predict", data="{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert Prediction.objects.count() == 0


def test_predict_with_a_broken_version_is_409(api_client, knn_model, artifacts_dir):
    (artifacts_dir / knn_model.artifact_path).write_bytes(b"tampered")
    response = predict(api_client, "knn", ADELIE)
    assert response.status_code == 409
    assert response.json()["code"] == "model_unavailable"


def test_a_body_over_the_size_limit_is_413_before_it_is_parsed(api_client, knn_model, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    response = predict(api_client, "knn", {"instances": [ADELIE] * 100})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert Prediction.objects.count() == 0
