"""Who may change the registry: Django model permissions, the same in the admin and the API.

A staff account without the permissions can read but not train, activate, sync or give
feedback; the "ML engineers" group (shipped by a data migration) has them. Feedback keeps
its history.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from classifier.models import PredictionFeedback
from tests.support.data import ADELIE
from tests.support.models import ml_engineers_group
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

WRITES = [
    ("post", "/api/v1/training-runs", {"algorithm": "knn", "name": "knn-perm"}),
    ("post", "/api/v1/models/knn/versions/1/activate", {"reason": "no right"}),
    ("post", "/api/v1/registry/sync", {}),
    ("post", "/api/v1/predictions/1/feedback", {"species": 2}),
]


def api_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_ml_engineers_group_ships_with_the_registry_permissions():
    group = ml_engineers_group()
    granted = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
    assert {"training.train", "classifier.change_mlmodel", "classifier.change_prediction"} <= granted


@pytest.mark.parametrize("method,path,body", WRITES)
def test_staff_without_the_permission_is_403_on_every_registry_write(django_user_model, knn_model, method, path, body):
    api_client(django_user_model.objects.create_user("bare-staff", is_staff=True)).post(
        "/classify/knn", ADELIE, format="json"
    )
    staff = django_user_model.objects.create_user("no-perms", is_staff=True)
    response = getattr(api_client(staff), method)(path, body, format="json")
    assert response.status_code == 403, response.content
    assert "permission" in response.json()["detail"]
    assert TrainingRun.objects.count() == 0
    assert knn_model.activations.count() == 1
    assert PredictionFeedback.objects.count() == 0
    # Reading is still open to them.
    assert api_client(staff).get("/api/v1/training-runs").status_code == 200


# The paths name id 1: sequences start again for each case (PostgreSQL's do not roll back).
@pytest.mark.django_db(transaction=True, reset_sequences=True)
@pytest.mark.parametrize("method,path,body", WRITES)
def test_a_member_of_ml_engineers_may_do_each_write(django_user_model, knn_model, method, path, body):
    engineer = django_user_model.objects.create_user("engineer", is_staff=True)
    engineer.groups.add(ml_engineers_group())
    client = api_client(engineer)
    client.post("/classify/knn", ADELIE, format="json")
    response = getattr(client, method)(path, body, format="json")
    assert response.status_code in {200, 202}, response.content


def test_the_admin_asks_for_the_same_train_permission(client, django_user_model, knn_model):
    staff = django_user_model.objects.create_user("admin-staff", password="x", is_staff=True)
    staff.user_permissions.add(*ml_engineers_group().permissions.exclude(codename="train"))
    client.force_login(staff)
    assert client.get("/admin/classifier/mlmodel/train/").status_code == 403
    staff.groups.add(ml_engineers_group())
    assert client.get("/admin/classifier/mlmodel/train/").status_code == 200


def test_feedback_keeps_every_answer_with_who_and_when(django_user_model, knn_model):
    first, second = (django_user_model.objects.create_user(name, is_staff=True) for name in ("ann", "bob"))
    for user in (first, second):
        user.groups.add(ml_engineers_group())
    prediction_id = api_client(first).post("/classify/knn", ADELIE, format="json")["X-Prediction-Id"]
    assert (
        api_client(first)
        .post(f"/api/v1/predictions/{prediction_id}/feedback", {"species": 2}, format="json")
        .status_code
        == 200
    )
    assert (
        api_client(second)
        .post(f"/api/v1/predictions/{prediction_id}/feedback", {"species": 1}, format="json")
        .status_code
        == 200
    )
    history = list(PredictionFeedback.objects.filter(prediction_id=prediction_id).order_by("id"))
    assert [(h.true_species_id, h.recorded_by.username) for h in history] == [(2, "ann"), (1, "bob")]
    assert history[0].recorded_at <= history[1].recorded_at
