"""The Django admin: models, versions (picture, rollback), training runs, predictions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.http import urlencode

from classifier.models import MLModel, ModelActivation, ModelVersion, Prediction
from classifier.paginators import EstimatedCountPaginator
from tests.support.models import uses_postgres
from training.models import TrainingRun
from training.services.runs import training_run_create
from training.start import training_run_start

pytestmark = pytest.mark.django_db

MODELS = "/admin/classifier/mlmodel/"
VERSIONS = "/admin/classifier/modelversion/"
RUNS = "/admin/training/trainingrun/"
PREDICTIONS = "/admin/classifier/prediction/"
TRAIN = "/admin/classifier/mlmodel/train/"


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def trained_knn():
    """knn v1 trained through the service (so it has its confusion-matrix picture)."""
    return training_run_start(algorithm="knn").version


# --- models ---------------------------------------------------------------------------------


def test_models_list_shows_the_active_version_and_its_metrics(admin_client, default_models):
    response = admin_client.get(MODELS)
    assert response.status_code == 200
    page = response.content.decode()
    for name, version in default_models.items():
        assert f"{name} v1" in page
        assert f"{version.metrics['test_f1']:.4f}" in page
    assert "Train a new model" in page


def test_a_models_page_lists_its_versions_and_the_active_metrics(admin_client, trained_knn):
    second = training_run_start(algorithm="knn", params={"n_neighbors": 9}).version
    response = admin_client.get(f"{MODELS}{trained_knn.model_id}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    assert page.index("knn v2") < page.index("knn v1")  # newest first
    assert "test accuracy" in page and f"{second.metrics['test_accuracy']:.4f}" in page
    assert '?model_name=knn">2 run(s)</a>' in page  # both runs, linked


def test_retrain_selected_queues_a_run_and_says_so(admin_client, admin_user, trained_knn, with_broker):
    response = admin_client.post(
        MODELS, {"action": "retrain_selected", "_selected_action": [trained_knn.model_id]}, follow=True
    )
    run = TrainingRun.objects.order_by("-id").first()
    assert run.status == TrainingRun.Status.QUEUED
    assert (run.trigger, run.triggered_by, run.model_name) == ("admin", admin_user, "knn")
    assert any(
        f"Queued training run {run.pk} for knn (knn); a Celery worker will train it" in text
        for text in messages_of(response)
    )


def test_retrain_selected_trains_in_process_when_no_broker_is_configured(admin_client, trained_knn):
    response = admin_client.post(
        MODELS, {"action": "retrain_selected", "_selected_action": [trained_knn.model_id]}, follow=True
    )
    assert any(text.startswith("Trained knn v2 in") for text in messages_of(response))
    assert MLModel.objects.get(name="knn").versions.count() == 2


def test_retrain_selected_refuses_a_model_that_is_already_training(admin_client, trained_knn):
    active = training_run_create(algorithm="knn", task_id="busy")
    response = admin_client.post(
        MODELS, {"action": "retrain_selected", "_selected_action": [trained_knn.model_id]}, follow=True
    )
    assert any(
        f"knn was not retrained: A training run for 'knn' is already queued or running (run {active.pk}" in text
        for text in messages_of(response)
    )
    assert TrainingRun.objects.count() == 2  # the first one and the busy one: nothing new


def test_train_a_new_model_starts_a_run_and_opens_its_page(admin_client, admin_user):
    response = admin_client.post(
        TRAIN,
        {"algorithm": "knn", "name": "knn7", "params": "n_neighbors=7\n# a comment\nweights=distance",
         "test_size": "0.25", "seed": "3", "activation": "policy"},
    )  # fmt: skip
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{RUNS}{run.pk}/change/"
    assert run.params == {"n_neighbors": 7, "weights": "distance"}
    assert (run.model_name, run.test_size, run.seed, run.trigger) == ("knn7", 0.25, 3, "admin")
    assert run.triggered_by == admin_user and run.status == TrainingRun.Status.SUCCEEDED
    page = admin_client.get(response["Location"]).content.decode()
    assert "Trained knn7 v1" in page and "knn7 v1" in page


def test_train_a_new_model_accepts_params_as_json(admin_client):
    admin_client.post(
        TRAIN,
        {"algorithm": "svm", "params": '{"C": 2.5, "kernel": "linear"}', "test_size": "0.2", "seed": "42",
         "activation": "never"},
    )  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.params == {"C": 2.5, "kernel": "linear"} and run.activation == "never"
    assert not run.activated


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"params": "n_neighbours=3"}, "params", "knn has no parameter &#x27;n_neighbours&#x27;"),
        ({"params": "n_neighbors=-1"}, "params", "n_neighbors"),
        ({"params": "n_neighbors"}, "params", "expected NAME=VALUE"),
        ({"params": '{"n_neighbors": 3'}, "params", "Not valid JSON"),
        ({"params": "[1, 2]"}, "params", "expected NAME=VALUE"),
        ({"name": "Bad Name!"}, "name", "lower-case letters"),
        ({"test_size": "0.9"}, "test_size", "less than or equal to 0.5"),
        ({"algorithm": "forest"}, "algorithm", "Select a valid choice"),
    ],
)
def test_train_a_new_model_shows_field_errors_and_starts_nothing(admin_client, fields, field, message):
    data = {"algorithm": "knn", "params": "", "test_size": "0.2", "seed": "42", "activation": "policy", **fields}
    response = admin_client.post(TRAIN, data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [field]
    assert message in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_train_a_new_model_refuses_a_second_run_for_the_same_model(admin_client):
    training_run_create(algorithm="knn", task_id="busy")
    response = admin_client.post(
        TRAIN, {"algorithm": "knn", "params": "", "test_size": "0.2", "seed": "42", "activation": "policy"}
    )
    assert "already queued or running" in str(response.context["form"].errors["algorithm"])
    assert TrainingRun.objects.count() == 1


def test_staff_without_the_training_permission_cannot_train(client, django_user_model, trained_knn):
    staff = django_user_model.objects.create_user(username="viewer", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_mlmodel"))
    client.force_login(staff)
    assert client.get(TRAIN).status_code == 403
    page = client.get(MODELS).content.decode()
    assert "Train a new model" not in page and "retrain_selected" not in page


def test_the_admin_needs_a_staff_login(client, trained_knn):
    for url in (MODELS, TRAIN, RUNS, PREDICTIONS, f"{VERSIONS}{trained_knn.pk}/confusion-matrix.png"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url


# --- versions -------------------------------------------------------------------------------


def test_a_versions_page_shows_metrics_params_hash_libraries_report_and_picture(admin_client, trained_knn):
    response = admin_client.get(f"{VERSIONS}{trained_knn.pk}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    assert trained_knn.sha256 in page
    assert "scikit-learn" in page and trained_knn.library_versions["scikit-learn"] in page
    assert "n_neighbors" in page and "CV accuracy (mean)" in page
    assert "precision" in page and "Chinstrap" in page and "weighted avg" in page
    picture_url = f"{VERSIONS}{trained_knn.pk}/confusion-matrix.png"
    assert f'<img src="{picture_url}"' in page
    assert "<textarea" not in page and 'name="artifact_path"' not in page  # nothing to edit

    picture = admin_client.get(picture_url)
    assert picture.status_code == 200 and picture["Content-Type"] == "image/png"
    assert b"".join(picture.streaming_content).startswith(b"\x89PNG\r\n\x1a\n")


def test_the_picture_view_serves_nothing_outside_the_artifacts_folder(admin_client, trained_knn, tmp_path):
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"\x89PNG not yours")
    ModelVersion.objects.filter(pk=trained_knn.pk).update(confusion_matrix_path="../secret.png")
    assert admin_client.get(f"{VERSIONS}{trained_knn.pk}/confusion-matrix.png").status_code == 404
    ModelVersion.objects.filter(pk=trained_knn.pk).update(confusion_matrix_path="")
    assert admin_client.get(f"{VERSIONS}{trained_knn.pk}/confusion-matrix.png").status_code == 404


def test_activate_this_version_rolls_back_and_is_audited(admin_client, admin_user, trained_knn):
    second = training_run_start(algorithm="knn", params={"n_neighbors": 9}).version
    page = admin_client.get(f"{VERSIONS}{trained_knn.pk}/change/").content.decode()
    assert "Activate this version" in page
    assert "Activate this version" not in admin_client.get(f"{VERSIONS}{second.pk}/change/").content.decode()

    response = admin_client.post(f"{VERSIONS}{trained_knn.pk}/activate/", follow=True)
    assert MLModel.objects.get(name="knn").active_version == trained_knn
    assert "knn v1 is now active (instead of v2)" in messages_of(response)[0]
    activation = ModelActivation.objects.order_by("-id").first()
    assert (activation.version, activation.previous_version, activation.activated_by) == (
        trained_knn,
        second,
        admin_user,
    )
    assert admin_client.get(f"{VERSIONS}{trained_knn.pk}/activate/").status_code == 405


def test_the_activate_action_promotes_one_version_per_model(admin_client, trained_knn):
    second = training_run_start(algorithm="knn", params={"n_neighbors": 9}, activation="never").version
    both = {"action": "activate_selected", "_selected_action": [trained_knn.pk, second.pk]}
    response = admin_client.post(VERSIONS, both, follow=True)
    assert "Select one version per model" in messages_of(response)[0]
    admin_client.post(VERSIONS, {"action": "activate_selected", "_selected_action": [second.pk]})
    assert MLModel.objects.get(name="knn").active_version == second


def test_a_broken_version_cannot_be_activated(admin_client, trained_knn):
    training_run_start(algorithm="knn", params={"n_neighbors": 9})
    ModelVersion.objects.filter(pk=trained_knn.pk).update(broken_reason="the file was tampered with")
    response = admin_client.post(f"{VERSIONS}{trained_knn.pk}/activate/", follow=True)
    assert "cannot be activated: the file was tampered with" in messages_of(response)[0]
    assert MLModel.objects.get(name="knn").active_version.number == 2


# --- training runs --------------------------------------------------------------------------


def test_the_runs_page_refreshes_itself_only_while_a_run_is_active(admin_client, trained_knn):
    refresh = '<meta http-equiv="refresh" content="3">'
    assert refresh not in admin_client.get(RUNS).content.decode()
    done = TrainingRun.objects.get()
    assert refresh not in admin_client.get(f"{RUNS}{done.pk}/change/").content.decode()
    queued = training_run_create(algorithm="svm", task_id="t")
    page = admin_client.get(RUNS).content.decode()
    assert refresh in page and "refreshes every 3 seconds" in page
    assert refresh in admin_client.get(f"{RUNS}{queued.pk}/change/").content.decode()


def test_the_runs_page_shows_status_duration_error_and_version(admin_client, trained_knn, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("nothing,useful\n")
    failed = training_run_start(algorithm="svm", data_path=str(bad))
    page = admin_client.get(RUNS).content.decode()
    assert "succeeded" in page and "failed" in page
    assert f'href="{VERSIONS}{trained_knn.pk}/change/">knn v1</a>' in page
    assert re.search(r"\d+\.\ds</td>", page)
    detail = admin_client.get(f"{RUNS}{failed.pk}/change/").content.decode()
    assert str(bad) in detail
    assert 'name="_save"' not in detail and "deletelink" not in detail  # an audit trail: read-only


# --- predictions ----------------------------------------------------------------------------


def _predictions(version: ModelVersion, species: list[int], *, days_ago: int = 0) -> list[Prediction]:
    when = timezone.now() - timedelta(days=days_ago)
    rows = [
        Prediction(
            model_id=version.model_id,
            version=version,
            created_at=when,
            endpoint="classify",
            inputs={"island": 1},
            species_id=code,
            probabilities=None,
            latency_ms=1.5,
        )
        for code in species
    ]
    return Prediction.objects.bulk_create(rows)


def _listed_ids(response) -> list[int]:
    return [row.pk for row in response.context["cl"].result_list]


def test_predictions_are_read_only(admin_client, trained_knn):
    (row,) = _predictions(trained_knn, [1])
    page = admin_client.get(f"{PREDICTIONS}{row.pk}/change/").content.decode()
    assert "1 (Adelie)" in page and 'name="_save"' not in page
    assert admin_client.get(f"{PREDICTIONS}add/").status_code == 403
    assert admin_client.post(f"{PREDICTIONS}{row.pk}/delete/").status_code == 403


def test_predictions_filter_by_model_version_species_and_date(admin_client, trained_knn):
    svm = training_run_start(algorithm="svm").version
    knn_rows = _predictions(trained_knn, [1, 2, 3])
    svm_rows = _predictions(svm, [3, 3])
    old = _predictions(trained_knn, [1], days_ago=40)

    def ids(query: str) -> set[int]:
        response = admin_client.get(f"{PREDICTIONS}?{query}")
        assert response.status_code == 200
        return set(_listed_ids(response))

    assert ids(f"model__id__exact={svm.model_id}") == {row.pk for row in svm_rows}
    assert ids(f"version={trained_knn.pk}") == {row.pk for row in knn_rows + old}
    assert ids("species=3") == {knn_rows[2].pk} | {row.pk for row in svm_rows}
    since = (timezone.now() - timedelta(days=7)).replace(microsecond=0)
    assert old[0].pk not in ids(urlencode({"created_at__gte": since.isoformat(sep=" ")}))
    assert ids(f"q={knn_rows[1].pk}") == {knn_rows[1].pk}
    assert ids("q=not-a-number") == set()
    page = admin_client.get(PREDICTIONS).content.decode()
    assert "knn v1" in page and "svm v1" in page  # the version filter names versions


def test_predictions_list_is_newest_first_with_a_constant_number_of_queries(
    admin_client, trained_knn, django_assert_max_num_queries
):
    _predictions(trained_knn, [1, 2, 3] * 3)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(PREDICTIONS)
    _predictions(trained_knn, [1, 2, 3] * 30)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(PREDICTIONS)
    assert len(many) == len(few)
    listed = _listed_ids(response)
    assert listed == sorted(listed, reverse=True) and len(listed) == 99


def test_predictions_list_never_counts_the_whole_table(admin_client, trained_knn):
    _predictions(trained_knn, [1, 2, 3] * 5)
    for query in ("", f"?model__id__exact={trained_knn.model_id}", "?species=2"):
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(f"{PREDICTIONS}{query}")
        assert response.status_code == 200
        counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "classifier_prediction" in q["sql"]]
        assert counts, "the page still reports how many rows it shows"
        assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_the_paginator_caps_its_count(trained_knn, monkeypatch):
    _predictions(trained_knn, [1] * 30)
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 20)
    queryset = Prediction.objects.filter(species_id=1).order_by("-id")
    assert EstimatedCountPaginator(queryset, 10).count == 20
    assert EstimatedCountPaginator(queryset, 10).num_pages == 2


@pytest.mark.postgres
def test_on_postgresql_an_unfiltered_list_uses_the_planners_row_estimate(trained_knn, monkeypatch):
    assert uses_postgres()
    _predictions(trained_knn, [1, 2, 3] * 40)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE classifier_prediction")
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 50)
    with CaptureQueriesContext(connection) as queries:
        count = EstimatedCountPaginator(Prediction.objects.order_by("-id"), 100).count
    assert count == 120
    assert "reltuples" in queries[0]["sql"] and not any("COUNT(" in q["sql"].upper() for q in queries)
