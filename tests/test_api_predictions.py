"""The prediction log over API v1: filters, cursor pagination, detail and ground-truth feedback."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from classifier.models import Prediction
from tests.support.data import ADELIE, CHINSTRAP, GENTOO, random_penguins
from tests.support.models import register_result

pytestmark = pytest.mark.django_db


def predict(client, name, rows, query=""):
    response = client.post(
        f"/api/v1/models/{name}/predict{query}", data=json.dumps({"instances": rows}), content_type="application/json"
    )
    assert response.status_code == 200, response.content[:300]
    return [row["prediction_id"] for row in response.json()["predictions"]]


def all_pages(client, query: dict) -> tuple[list[int], int]:
    """Follow ``next`` from the first page; returns every id seen and the number of pages."""
    url = "/api/v1/predictions?" + urlencode(query)
    ids: list[int] = []
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content[:300]
        body = response.json()
        ids.extend(row["id"] for row in body["results"])
        pages += 1
        url = body["next"]
    return ids, pages


@pytest.fixture
def log(api_client, trained_results):
    """knn v1 and v2 and randomforest v1 have each answered a few penguins."""
    register_result("knn", trained_results["knn"])
    register_result("randomforest", trained_results["randomforest"])
    knn_v1 = predict(api_client, "knn", [ADELIE, GENTOO, GENTOO])
    forest = predict(api_client, "randomforest", [ADELIE, CHINSTRAP])
    register_result("knn", trained_results["knn"])
    knn_v2 = predict(api_client, "knn", [CHINSTRAP, ADELIE])
    return {"knn_v1": knn_v1, "forest": forest, "knn_v2": knn_v2}


def test_the_log_needs_a_login(api_client, user_client, log):
    response = api_client.get("/api/v1/predictions")
    assert response.status_code == 401
    assert user_client.get("/api/v1/predictions").status_code == 200


def test_the_log_lists_newest_first_with_model_version_inputs_and_probabilities(user_client, log):
    body = user_client.get("/api/v1/predictions").json()
    rows = body["results"]
    assert [row["id"] for row in rows] == sorted(log["knn_v1"] + log["forest"] + log["knn_v2"], reverse=True)
    newest = rows[0]
    assert newest["model"] == "knn"
    assert newest["version"] == 2
    assert newest["endpoint"] == "predict"
    assert newest["species_name"] == "Adelie"
    assert newest["inputs"] == {**ADELIE, "bill_length_mm": 39.1, "flipper_length_mm": 181.0, "body_mass_g": 3750.0}
    assert sum(newest["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert newest["true_species_id"] is None
    assert newest["correct"] is None
    assert body["previous"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"model": "knn"}, lambda log: log["knn_v1"] + log["knn_v2"]),
        ({"model": "randomforest"}, lambda log: log["forest"]),
        ({"model": "knn", "version": 1}, lambda log: log["knn_v1"]),
        ({"model": "knn", "version": 2}, lambda log: log["knn_v2"]),
        ({"species": 3}, lambda log: log["knn_v1"][1:]),
        ({"species": "gentoo"}, lambda log: log["knn_v1"][1:]),
        ({"species": "Adelie", "model": "knn"}, lambda log: [log["knn_v1"][0], log["knn_v2"][1]]),
        ({"model": "nope"}, lambda log: []),
    ],
)
def test_the_log_filters_by_model_version_and_species(user_client, log, query, expected):
    ids, _ = all_pages(user_client, query)
    assert ids == sorted(expected(log), reverse=True)


def test_the_log_filters_by_time_range(user_client, log):
    old = log["knn_v1"]
    Prediction.objects.filter(pk__in=old).update(created_at=timezone.now() - timedelta(days=3))
    cutoff = (timezone.now() - timedelta(days=1)).isoformat()
    recent, _ = all_pages(user_client, {"created_after": cutoff})
    assert sorted(recent) == sorted(log["forest"] + log["knn_v2"])
    earlier, _ = all_pages(user_client, {"created_before": cutoff})
    assert sorted(earlier) == sorted(old)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"species": "emperor"}, "species"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"version": "x"}, "version"),
    ],
)
def test_a_bad_filter_value_is_400_naming_it(user_client, log, query, field):
    response = user_client.get("/api/v1/predictions?" + urlencode(query))
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_cursor_pagination_visits_every_row_once(user_client, knn_model, api_client):
    ids = predict(api_client, "knn", random_penguins(250))
    seen, pages = all_pages(user_client, {"page_size": 40})
    assert seen == sorted(ids, reverse=True)
    assert pages == 7


def test_an_invalid_cursor_is_a_json_400_naming_the_cursor(user_client, log):
    response = user_client.get("/api/v1/predictions?cursor=garbage")
    assert response.status_code == 400
    assert "next or previous link" in response.json()["errors"]["cursor"][0]


@pytest.mark.postgres
def test_filters_and_cursor_pages_stay_consistent_while_new_rows_arrive_on_postgres(
    user_client, api_client, trained_results
):
    register_result("knn", trained_results["knn"])
    register_result("svm", trained_results["svm"])
    knn_ids = predict(api_client, "knn", random_penguins(3000, seed=1))
    predict(api_client, "svm", random_penguins(2000, seed=2))

    url = "/api/v1/predictions?" + urlencode({"model": "knn", "page_size": 500})
    seen: list[int] = []
    while url:
        body = user_client.get(url).json()
        seen.extend(row["id"] for row in body["results"])
        url = body["next"]
        predict(api_client, "knn", [ADELIE])  # newer rows must not shift the pages being read
    assert seen == sorted(knn_ids, reverse=True)

    gentoo_knn = set(Prediction.objects.filter(model__name="knn", species_id=3).values_list("id", flat=True))
    ids, _ = all_pages(user_client, {"model": "knn", "species": "Gentoo", "page_size": 1000})
    assert set(ids) == gentoo_knn
    assert ids == sorted(ids, reverse=True)


def test_prediction_detail(user_client, log):
    prediction_id = log["forest"][1]
    response = user_client.get(f"/api/v1/predictions/{prediction_id}")
    assert response.status_code == 200
    assert response.json()["id"] == prediction_id
    assert response.json()["model"] == "randomforest"
    assert response.json()["species_name"] == "Chinstrap"
    assert user_client.get("/api/v1/predictions/999999").status_code == 404


def test_staff_feedback_records_the_true_species_with_who_and_when(staff_client, user_client, log):
    prediction_id = log["knn_v1"][1]  # answered Gentoo
    response = staff_client.post(
        f"/api/v1/predictions/{prediction_id}/feedback", data={"species": "chinstrap"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["true_species_id"] == 2
    assert body["true_species_name"] == "Chinstrap"
    assert body["correct"] is False
    assert body["feedback_by"] == "staff"
    assert body["feedback_at"]
    row = Prediction.objects.get(pk=prediction_id)
    assert row.true_species_id == 2
    assert row.feedback_by.username == "staff"

    # A correction replaces it, and the log can be filtered by it.
    staff_client.post(f"/api/v1/predictions/{prediction_id}/feedback", data={"species": 3}, format="json")
    assert Prediction.objects.get(pk=prediction_id).true_species_id == 3
    ids, _ = all_pages(user_client, {"has_feedback": "true"})
    assert ids == [prediction_id]
    ids, _ = all_pages(user_client, {"true_species": "Gentoo"})
    assert ids == [prediction_id]


@pytest.mark.parametrize("species", [4, "emperor", None, True, 2.5])
def test_feedback_with_an_unknown_species_is_400_and_records_nothing(staff_client, log, species):
    prediction_id = log["forest"][0]
    response = staff_client.post(
        f"/api/v1/predictions/{prediction_id}/feedback", data={"species": species}, format="json"
    )
    assert response.status_code == 400
    assert "species" in response.json()["errors"]
    assert Prediction.objects.get(pk=prediction_id).true_species_id is None


def test_feedback_refuses_anonymous_with_401_and_non_staff_with_403(api_client, user_client, staff_client, log):
    url = f"/api/v1/predictions/{log['forest'][0]}/feedback"
    assert api_client.post(url, data={"species": 1}, format="json").status_code == 401
    assert user_client.post(url, data={"species": 1}, format="json").status_code == 403
    assert Prediction.objects.get(pk=log["forest"][0]).true_species_id is None
    assert staff_client.post(url, data={"species": 1}, format="json").status_code == 200


def test_feedback_for_an_unknown_prediction_is_404(staff_client, log):
    response = staff_client.post("/api/v1/predictions/999999/feedback", data={"species": 1}, format="json")
    assert response.status_code == 404
