"""Champion and challenger: shadow answers on every door, never returned; statistics; promotion."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest

from classifier.models import MLModel, ModelActivation, Prediction
from core.datasets import dataset_load
from core.encoding import FIELDS
from tests.support.data import ADELIE, CHINSTRAP, DATA, GENTOO
from tests.support.models import register_result
from training.trainer import train

pytestmark = pytest.mark.django_db

URL = "/api/v1/models/knn/challenger"


@pytest.fixture
def user_client(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture(scope="module")
def weak_knn():
    """A knn that votes over 150 neighbours: it gets about four in five test rows right."""
    return train(algorithm="knn", dataset=dataset_load(DATA), params={"n_neighbors": 150})


@pytest.fixture
def champion_and_candidate(knn_model, weak_knn):
    return knn_model, register_result("knn", weak_knn, activate=False)


@pytest.fixture
def shadowed(staff_client, champion_and_candidate):
    response = staff_client.put(URL, data={"version": 2}, format="json")
    assert response.status_code == 200, response.content
    return champion_and_candidate


def penguins() -> list[dict]:
    return [ADELIE, CHINSTRAP, GENTOO]


def test_staff_sets_reads_and_stops_a_challenger(staff_client, champion_and_candidate):
    body = staff_client.put(URL, data={"version": 2}, format="json").json()
    assert (body["model"], body["champion_version"], body["challenger_version"]) == ("knn", 1, 2)
    assert body["since"] and body["shadow_predictions"] == 0 and body["recommendation"] == "not enough labels"
    assert staff_client.get(URL).json()["challenger_version"] == 2
    assert MLModel.objects.get(name="knn").challenger_version.number == 2
    response = staff_client.delete(URL)
    assert response.status_code == 200 and response.json()["challenger_version"] is None
    assert MLModel.objects.get(name="knn").challenger_version is None


def test_a_challenger_must_be_another_existing_version_and_staff_only(
    staff_client, user_client, api_client, champion_and_candidate
):
    active = staff_client.put(URL, data={"version": 1}, format="json")
    assert active.status_code == 400 and "active version" in active.json()["errors"]["version"][0]
    missing = staff_client.put(URL, data={"version": 9}, format="json")
    assert missing.status_code == 400 and "no version 9" in missing.json()["errors"]["version"][0]
    assert staff_client.put(URL, data={"version": "two"}, format="json").status_code == 400
    assert staff_client.put(URL, data={}, format="json").json()["errors"]["version"]
    assert staff_client.put("/api/v1/models/nope/challenger", data={"version": 2}, format="json").status_code == 404
    assert user_client.put(URL, data={"version": 2}, format="json").status_code == 403
    assert api_client.delete(URL).status_code in (401, 403)
    assert MLModel.objects.get(name="knn").challenger_version is None


def test_every_door_logs_the_challengers_answer_and_answers_with_the_champion(api_client, shadowed, weak_knn):
    champion, challenger = shadowed
    compat = api_client.post("/classify/knn", data=json.dumps(CHINSTRAP), content_type="application/json")
    single = api_client.post("/api/v1/models/knn/predict", data=json.dumps(ADELIE), content_type="application/json")
    batch = api_client.post(
        "/api/v1/models/knn/predict", data=json.dumps({"instances": penguins() * 4}), content_type="application/json"
    )
    tensor = [[CHINSTRAP[name] for name in FIELDS]]
    infer = api_client.post(
        "/v2/models/knn/infer",
        data=json.dumps({"inputs": [{"name": "input", "shape": [1, 7], "datatype": "FP64", "data": tensor}]}),
        content_type="application/json",
    )
    assert infer.status_code == 200, infer.content
    assert infer.json()["model_version"] == "1" and "challenger" not in infer.content.decode()
    for response in (compat, single, batch):
        assert response.status_code == 200, response.content
        assert response["X-Model-Version"] == "1"
        assert "challenger" not in response.content.decode()
    assert compat.json()["species_id"] == 2 and single.json()["version"] == 1
    rows = Prediction.objects.order_by("id")
    assert rows.count() == 1 + 1 + 12 + 1
    assert {row.version_id for row in rows} == {champion.pk}
    assert {row.challenger_version_id for row in rows} == {challenger.pk}
    matrix = np.array([[row.inputs[name] for name in FIELDS] for row in rows], dtype=float)
    assert [row.challenger_species_id for row in rows] == weak_knn.pipeline.predict(matrix).tolist()
    assert {row.endpoint for row in rows} == {"classify", "predict", "infer"}


def test_without_a_challenger_nothing_is_shadowed(api_client, staff_client, shadowed):
    staff_client.delete(URL)
    api_client.post("/classify/knn", data=json.dumps(GENTOO), content_type="application/json")
    row = Prediction.objects.get()
    assert (row.challenger_version_id, row.challenger_species_id) == (None, None)


def test_challenger_statistics_after_feedback_match_scipy(api_client, staff_client, shadowed):
    dataset = dataset_load(DATA)
    frame = dataset.frame.sample(60, random_state=3)
    from core.encoding import FIELDS

    features = dataset.features()[frame.index]
    truth = dataset.target()[frame.index]
    instances = [dict(zip(FIELDS, row)) for row in features.tolist()]
    for instance in instances:
        for name in ("island", "sex", "flipper_length_mm", "body_mass_g", "year"):
            instance[name] = int(instance[name])
    body = api_client.post(
        "/api/v1/models/knn/predict", data=json.dumps({"instances": instances}), content_type="application/json"
    ).json()
    ids = [row["prediction_id"] for row in body["predictions"]]
    for prediction_id, species in zip(ids[:45], truth[:45].tolist()):
        url = f"/api/v1/predictions/{prediction_id}/feedback"
        response = staff_client.post(url, data={"species": species}, format="json")
        assert response.status_code == 200, response.content

    stats = staff_client.get(URL).json()
    rows = Prediction.objects.filter(pk__in=ids[:45])
    champion_right = np.array([row.species_id == row.true_species_id for row in rows])
    challenger_right = np.array([row.challenger_species_id == row.true_species_id for row in rows])
    champion_only = int((champion_right & ~challenger_right).sum())
    challenger_only = int((challenger_right & ~champion_right).sum())
    assert stats["shadow_predictions"] == 60 and stats["labelled"] == 45
    assert stats["agreement"] == pytest.approx(
        np.mean([row.species_id == row.challenger_species_id for row in Prediction.objects.all()])
    )
    assert (stats["champion_correct"], stats["challenger_correct"]) == (champion_right.sum(), challenger_right.sum())
    assert (stats["champion_only"], stats["challenger_only"]) == (champion_only, challenger_only)
    expected = binomtest(challenger_only, champion_only + challenger_only, 0.5).pvalue if champion_only else 1.0
    assert stats["test"] == "mcnemar-exact" and stats["p_value"] == pytest.approx(expected)
    assert stats["recommendation"] == "keep champion"


def test_promoting_the_challenger_records_its_statistics_in_the_ledger(api_client, staff_client, shadowed):
    api_client.post("/classify/knn", data=json.dumps(GENTOO), content_type="application/json")
    response = staff_client.post("/api/v1/models/knn/versions/2/activate", data={}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["changed"] is True and (body["version"], body["previous_version"]) == (2, 1)
    assert body["evidence"]["shadow_predictions"] == 1 and body["evidence"]["challenger_version"] == 2
    assert "challenger v2 promoted" in body["reason"]
    model = MLModel.objects.get(name="knn")
    assert model.active_version.number == 2 and model.challenger_version is None
    assert ModelActivation.objects.filter(model=model).latest("id").evidence["recommendation"] == "not enough labels"
