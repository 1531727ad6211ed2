"""The ledger of what was live: every activation newest first, and ``?at=`` for any moment."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from classifier.models import ModelActivation
from tests.support.models import register_result

pytestmark = pytest.mark.django_db

URL = "/api/v1/models/knn/activations"


def at(hour: int) -> datetime:
    return datetime(2026, 5, 1, hour, 0, tzinfo=UTC)


@pytest.fixture
def three_versions(trained_results, staff_client):
    """knn v1 live from 09:00, v2 from 11:00, v1 again (a rollback) from 13:00."""
    register_result("knn", trained_results["knn"])
    register_result("knn", trained_results["svm"], activate=False)
    activate = "/api/v1/models/knn/versions/{}/activate"
    assert staff_client.post(activate.format(2), {"reason": "try svm"}, format="json").status_code == 200
    assert staff_client.post(activate.format(1), {}, format="json").status_code == 200
    for activation, hour in zip(ModelActivation.objects.order_by("id"), (9, 11, 13), strict=True):
        ModelActivation.objects.filter(pk=activation.pk).update(created_at=at(hour))


def test_the_ledger_lists_every_activation_newest_first(api_client, three_versions):
    response = api_client.get(URL)
    assert response.status_code == 200
    rows = response.json()["results"] if isinstance(response.json(), dict) else response.json()
    assert [(row["version"], row["previous_version"]) for row in rows] == [(1, 2), (2, 1), (1, None)]
    assert rows[1]["reason"] == "try svm" and rows[1]["activated_by"] == "staff"
    assert {"actor", "activated_at", "evidence"} <= set(rows[0])


@pytest.mark.parametrize(
    ("moment", "version"),
    [("2026-05-01T08:59:59Z", None), ("2026-05-01T09:00:00Z", 1), ("2026-05-01T10:00:00Z", 1),
     ("2026-05-01T12:30:00+01:00", 2), ("2026-05-01T12:59:00Z", 2), ("2026-05-02T00:00:00Z", 1)],
)  # fmt: skip
def test_at_answers_the_version_that_was_serving_then(api_client, three_versions, moment, version):
    response = api_client.get(URL, {"at": moment})
    assert response.status_code == 200, response.content
    assert response.json() == {"model": "knn", "at": response.json()["at"], "version": version}
    assert datetime.fromisoformat(response.json()["at"]) == datetime.fromisoformat(moment)


def test_at_must_be_an_iso_time(api_client, three_versions):
    response = api_client.get(URL, {"at": "yesterday"})
    assert response.status_code == 400 and "ISO" in response.json()["errors"]["at"][0]


def test_the_ledger_of_an_unknown_model_is_404(api_client):
    assert api_client.get("/api/v1/models/nope/activations").status_code == 404


def test_activating_the_active_version_again_changes_nothing(staff_client, knn_model):
    before = ModelActivation.objects.count()
    response = staff_client.post("/api/v1/models/knn/versions/1/activate", {"reason": "again"}, format="json")
    assert response.status_code == 200
    assert response.json()["changed"] is False and response.json()["version"] == 1
    assert ModelActivation.objects.count() == before


def test_a_trained_version_activated_by_the_gate_carries_its_evaluation_in_the_ledger(staff_client):
    from training.start import training_run_start

    training_run_start(algorithm="knn")
    training_run_start(algorithm="knn", params={"n_neighbors": 7})
    rows = staff_client.get(URL).json()
    rows = rows["results"] if isinstance(rows, dict) else rows
    assert rows[0]["version"] == 2 and rows[0]["evidence"]["against_version"] == 1
    assert rows[0]["evidence"]["test"] == "mcnemar-exact" and rows[0]["reason"].startswith("activated")
