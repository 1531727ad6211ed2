"""The earlier service's HTTP contract: GET /models and POST /classify/<name>."""

from __future__ import annotations

import csv
import json
import pickle

import pytest
from sklearn.preprocessing import StandardScaler

from classifier.models import ModelVersion, Prediction
from tests.support.data import ADELIE, CHINSTRAP, DATA, GENTOO, legacy_pickle

pytestmark = pytest.mark.django_db

SPECIES_IDS = {"Adelie": 1, "Chinstrap": 2, "Gentoo": 3}
ISLAND_CODES = {"Torgersen": 1, "Biscoe": 2, "Dream": 3}


def classify(client, name, body, **extra):
    return client.post(f"/classify/{name}", data=json.dumps(body), content_type="application/json", **extra)


def first_of_each_species() -> dict[str, dict]:
    """The first complete row of each species in penguins.csv, as an API body."""
    found: dict[str, dict] = {}
    with open(DATA, newline="") as handle:
        for row in csv.DictReader(handle):
            if "NA" in row.values() or row["species"] in found:
                continue
            found[row["species"]] = {
                "island": ISLAND_CODES[row["island"]],
                "bill_length_mm": float(row["bill_length_mm"]),
                "bill_depth_mm": float(row["bill_depth_mm"]),
                "flipper_length_mm": float(row["flipper_length_mm"]),
                "body_mass_g": float(row["body_mass_g"]),
                "sex": 0 if row["sex"] == "female" else 1,
                "year": int(row["year"]),
            }
    return found


def test_models_is_empty_when_nothing_is_trained(client):
    response = client.get("/models")
    assert response.status_code == 200
    assert response.json() == {"available_models": []}


def test_models_lists_every_default_model_sorted_with_metrics(client, default_models):
    body = client.get("/models").json()
    names = [item["name"] for item in body["available_models"]]
    assert names == sorted(default_models)
    for item in body["available_models"]:
        assert item["endpoint"] == f"POST /classify/{item['name']}"
        assert set(item["metrics"]) == {"train_accuracy", "test_accuracy", "test_precision", "test_recall", "test_f1"}
        assert item["metrics"] == {key: default_models[item["name"]].metrics[key] for key in item["metrics"]}


@pytest.mark.parametrize("species", ["Adelie", "Chinstrap", "Gentoo"])
def test_every_default_model_names_the_true_species_of_a_known_penguin(client, default_models, species):
    body = first_of_each_species()[species]
    for name in default_models:
        response = classify(client, name, body)
        assert response.status_code == 200, response.content
        assert response.json() == {"model": name, "species_id": SPECIES_IDS[species], "species_name": species}


def test_classify_answers_gentoo_as_gentoo_not_chinstrap(client, knn_model):
    response = classify(client, "knn", GENTOO)
    assert response.json()["species_name"] == "Gentoo"
    assert response.json()["species_id"] == 3


def test_classify_accepts_island_and_sex_by_name_in_any_case(client, knn_model):
    by_code = classify(client, "knn", CHINSTRAP).json()
    by_name = classify(client, "knn", {**CHINSTRAP, "island": "dREAM", "sex": "FEMALE"}).json()
    assert by_name == by_code


def test_classify_writes_one_prediction_row_per_answer(client, knn_model):
    for body in (ADELIE, CHINSTRAP, GENTOO):
        response = classify(client, "knn", body)
        assert response.status_code == 200
    rows = list(Prediction.objects.order_by("id"))
    assert [row.species_id for row in rows] == [1, 2, 3]
    assert rows[0].inputs == ADELIE
    assert rows[0].version_id == knn_model.pk
    assert all(row.endpoint == "classify" for row in rows)


BAD_BODIES = [
    ({**ADELIE, "island": 4}, "island"),
    ({**ADELIE, "island": 0}, "island"),
    ({**ADELIE, "island": "Atlantis"}, "island"),
    ({**ADELIE, "island": True}, "island"),
    ({**ADELIE, "island": 1.5}, "island"),
    ({**ADELIE, "sex": 2}, "sex"),
    ({**ADELIE, "sex": "unknown"}, "sex"),
    ({**ADELIE, "sex": None}, "sex"),
    ({**ADELIE, "bill_length_mm": 9.9}, "bill_length_mm"),
    ({**ADELIE, "bill_length_mm": "39.1"}, "bill_length_mm"),
    ({**ADELIE, "bill_depth_mm": 35.1}, "bill_depth_mm"),
    ({**ADELIE, "flipper_length_mm": 99}, "flipper_length_mm"),
    ({**ADELIE, "body_mass_g": 10**400}, "body_mass_g"),
    ({**ADELIE, "year": 1999}, "year"),
    ({**ADELIE, "year": 2007.5}, "year"),
    ({key: value for key, value in ADELIE.items() if key != "year"}, "year"),
    ({key: value for key, value in ADELIE.items() if key != "island"}, "island"),
    ({}, "bill_depth_mm"),
    ([ADELIE], "non_field_errors"),
    ("island", "non_field_errors"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_classify_rejects_bad_body_naming_the_field(client, knn_model, body, field):
    response = classify(client, "knn", body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert field in response.json()["errors"]
    assert Prediction.objects.count() == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"island": NaN}',
        b'{"island": Infinity}',
        b"{" * 100_000,
        b"\xff\xfe\x00",
        b'{"island": 1',
    ],
)
def test_classify_rejects_a_body_that_is_not_json(client, knn_model, raw):
    response = client.post("/classify/knn", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert Prediction.objects.count() == 0


def test_classify_reads_json_even_without_a_json_content_type(client, knn_model):
    response = client.post("/classify/knn", data=json.dumps(ADELIE), content_type="text/plain")
    assert response.status_code == 200
    assert response.json()["species_name"] == "Adelie"


@pytest.mark.parametrize(
    "name", ["nope", "..%2F..", "%2E%2E", "%00", "knn%00", "a" * 300, "p%C3%A9nguin", "KNN", "knn%2F"]
)
def test_classify_unknown_model_is_json_404(client, knn_model, name):
    response = client.post(f"/classify/{name}", data=json.dumps(ADELIE), content_type="application/json")
    assert response.status_code == 404
    assert response.json()["code"] in {"model_not_found", "not_found"}


def test_unknown_model_message_points_to_the_listing(client, knn_model):
    body = classify(client, "nope", ADELIE).json()
    assert "GET /models" in body["detail"]


def test_unknown_path_is_json_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def _drop(artifacts_dir, name: str, obj) -> None:
    folder = artifacts_dir / "models"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}_model.pkl", "wb") as handle:
        pickle.dump(obj, handle)


def test_a_dropped_in_pickle_serves_without_restart_and_deleting_it_withdraws_it(
    client, knn_model, trained_results, artifacts_dir
):
    assert [m["name"] for m in client.get("/models").json()["available_models"]] == ["knn"]
    _drop(artifacts_dir, "forest", trained_results["randomforest"].pipeline)

    listed = client.get("/models").json()["available_models"]
    assert [m["name"] for m in listed] == ["forest", "knn"]
    response = classify(client, "forest", GENTOO)
    assert response.status_code == 200
    assert response.json()["species_name"] == "Gentoo"
    version = ModelVersion.objects.get(model__name="forest")
    assert version.source == "discovered"
    assert len(version.sha256) == 64

    (artifacts_dir / "models" / "forest_model.pkl").unlink()
    assert [m["name"] for m in client.get("/models").json()["available_models"]] == ["knn"]
    assert classify(client, "forest", GENTOO).status_code == 404


@pytest.mark.parametrize(("body", "species"), [(ADELIE, "Adelie"), (CHINSTRAP, "Chinstrap"), (GENTOO, "Gentoo")])
def test_a_legacy_nine_feature_pickle_answers_the_true_species(client, db, artifacts_dir, body, species):
    _drop(artifacts_dir, "legacy", legacy_pickle())
    response = classify(client, "legacy", body)
    assert response.status_code == 200, response.content
    assert response.json() == {"model": "legacy", "species_id": SPECIES_IDS[species], "species_name": species}


def test_a_junk_file_is_listed_as_broken_and_classifying_with_it_is_a_json_error(client, db, artifacts_dir):
    folder = artifacts_dir / "models"
    folder.mkdir(parents=True)
    (folder / "junk_model.pkl").write_bytes(b"this is not a pickle")
    _drop(artifacts_dir, "scaler", StandardScaler().fit([[1, 2]]))

    listed = {m["name"]: m for m in client.get("/models").json()["available_models"]}
    assert listed["junk"]["status"] == "broken"
    assert "not a loadable model file" in listed["junk"]["error"]
    assert listed["scaler"]["status"] == "broken"
    assert "predict" in listed["scaler"]["error"]
    for name in ("junk", "scaler"):
        response = classify(client, name, ADELIE)
        assert response.status_code == 409
        assert response.json()["code"] == "model_unavailable"
    assert Prediction.objects.count() == 0


def test_a_tampered_artifact_is_refused_and_marked_broken(client, knn_model, artifacts_dir):
    path = artifacts_dir / knn_model.artifact_path
    path.write_bytes(path.read_bytes()[:-10])
    response = classify(client, "knn", ADELIE)
    assert response.status_code == 409
    assert "does not match its registry hash" in response.json()["detail"]
    knn_model.refresh_from_db()
    assert knn_model.broken_reason


def test_no_answer_is_given_when_the_prediction_cannot_be_logged(client, knn_model):
    from django.db import OperationalError, connection

    def fail_log_writes(execute, sql, params, many, context):
        if 'INSERT INTO "classifier_prediction"' in sql:
            raise OperationalError("disk full")
        return execute(sql, params, many, context)

    classify(client, "knn", ADELIE)  # the model is loaded; only the log write fails below
    with connection.execute_wrapper(fail_log_writes):
        response = classify(client, "knn", ADELIE)
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert "species_name" not in response.json()
