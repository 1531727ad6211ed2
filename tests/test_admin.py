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
from core.encoding import EXAMPLES
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
    assert any(text.startswith("Trained knn again in") and "identical to v1" in text for text in messages_of(response))
    assert MLModel.objects.get(name="knn").versions.count() == 1


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
         "test_size": "0.25", "seed": "3", "split_seed": "5", "activation": "not_worse"},
    )  # fmt: skip
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{RUNS}{run.pk}/change/"
    assert run.params == {"n_neighbors": 7, "weights": "distance"}
    assert (run.model_name, run.test_size, run.seed, run.split_seed, run.trigger) == ("knn7", 0.25, 3, 5, "admin")
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
    assert run.params == {"C": 2.5, "kernel": "linear"} and run.activation == "never" and run.split_seed == 42
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
    data = {"algorithm": "knn", "params": "", "test_size": "0.2", "seed": "42", "activation": "not_worse", **fields}
    response = admin_client.post(TRAIN, data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [field]
    assert message in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_train_a_new_model_refuses_a_second_run_for_the_same_model(admin_client):
    training_run_create(algorithm="knn", task_id="busy")
    response = admin_client.post(
        TRAIN, {"algorithm": "knn", "params": "", "test_size": "0.2", "seed": "42", "activation": "not_worse"}
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


def test_a_versions_page_shows_its_predictions_live_accuracy_size_and_changed_params(admin_client, trained_knn):
    second = training_run_start(algorithm="knn", params={"n_neighbors": 9}).version
    rows = _predictions(second, [1, 2, 3, 3])
    for row, truth in zip(rows, [1, 2, 3, 1]):
        Prediction.objects.filter(pk=row.pk).update(true_species_id=truth)
    page = admin_client.get(f"{VERSIONS}{second.pk}/change/").content.decode()
    assert "<h1>Model version knn v2</h1>" in page
    assert "4 predictions logged" in page and "3 of 4 labelled correct: <strong>0.750</strong>" in page
    assert f"{second.size_bytes / 1000:.1f} kB" in page
    assert re.search(r"\d+\.\d\d s", page)  # training time
    changed, _, everything = page.partition("<details>")
    assert "n_neighbors" in changed and "leaf_size" not in changed  # only what differs from scikit-learn's
    assert "all 8 parameters" in everything and "leaf_size" in everything
    first = admin_client.get(f"{VERSIONS}{trained_knn.pk}/change/").content.decode()
    assert "no feedback yet" in first and "scikit-learn&#x27;s defaults" in first


def test_a_models_page_shows_who_activated_which_version_when_and_why(admin_client, admin_user, trained_knn):
    second = training_run_start(algorithm="knn", params={"n_neighbors": 9}).version
    admin_client.post(f"{VERSIONS}activate/?ids={trained_knn.pk}", {"reason": "v2 confuses Chinstraps"})
    page = admin_client.get(f"{MODELS}{trained_knn.model_id}/change/").content.decode()
    assert "<h1>Model knn</h1>" in page and "Activation history" in page
    history = page[page.index("<th>when</th>") :]
    assert history.index("v2 confuses Chinstraps") < history.index(f">knn v{second.number}</a>")  # newest first
    assert admin_user.username in history


def test_the_site_header_and_list_titles_say_what_the_page_is(admin_client, trained_knn):
    page = admin_client.get(MODELS).content.decode()
    assert "<h1>Models</h1>" in page and "Select model to change" not in page
    assert "Penguin Classifier</a></div>" in page or ">Penguin Classifier<" in page
    assert "<title>Models | Penguin Classifier admin</title>" in page
    assert "<h1>Model versions</h1>" in admin_client.get(VERSIONS).content.decode()


def test_the_picture_view_serves_nothing_outside_the_artifacts_folder(admin_client, trained_knn, tmp_path):
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"\x89PNG not yours")
    ModelVersion.objects.filter(pk=trained_knn.pk).update(confusion_matrix_path="../secret.png")
    assert admin_client.get(f"{VERSIONS}{trained_knn.pk}/confusion-matrix.png").status_code == 404
    ModelVersion.objects.filter(pk=trained_knn.pk).update(confusion_matrix_path="")
    assert admin_client.get(f"{VERSIONS}{trained_knn.pk}/confusion-matrix.png").status_code == 404


def activate_url(*versions) -> str:
    return f"{VERSIONS}activate/?" + urlencode({"ids": ",".join(str(version.pk) for version in versions)})


def test_activate_this_version_asks_for_a_reason_confirms_and_is_audited(admin_client, admin_user, trained_knn):
    second = training_run_start(algorithm="knn", params={"n_neighbors": 9}).version
    page = admin_client.get(f"{VERSIONS}{trained_knn.pk}/change/").content.decode()
    assert "Activate this version" in page and activate_url(trained_knn).replace("&", "&amp;") in page
    assert "Activate this version" not in admin_client.get(f"{VERSIONS}{second.pk}/change/").content.decode()

    confirm = admin_client.get(activate_url(trained_knn)).content.decode()
    assert "Activate knn v1?" in confirm and "v1" in confirm and "instead of v2" in confirm
    assert MLModel.objects.get(name="knn").active_version == second  # asking changes nothing

    refused = admin_client.post(activate_url(trained_knn), {"reason": "  "})
    assert refused.status_code == 200 and "This field is required." in refused.content.decode()
    assert MLModel.objects.get(name="knn").active_version == second

    response = admin_client.post(activate_url(trained_knn), {"reason": "v2 confuses Chinstraps"}, follow=True)
    assert MLModel.objects.get(name="knn").active_version == trained_knn
    assert "knn v1 is now active (instead of v2)" in messages_of(response)[0]
    activation = ModelActivation.objects.order_by("-id").first()
    assert (activation.version, activation.previous_version, activation.activated_by, activation.reason) == (
        trained_knn,
        second,
        admin_user,
        "v2 confuses Chinstraps",
    )


def test_the_activate_action_confirms_one_version_per_model(admin_client, trained_knn):
    second = training_run_start(algorithm="knn", params={"n_neighbors": 9}, activation="never").version
    both = {"action": "activate_selected", "_selected_action": [trained_knn.pk, second.pk]}
    response = admin_client.post(VERSIONS, both, follow=True)
    assert "Select one version per model" in messages_of(response)[0]
    answer = admin_client.post(VERSIONS, {"action": "activate_selected", "_selected_action": [second.pk]})
    assert answer.status_code == 302 and answer["Location"] == activate_url(second)
    assert MLModel.objects.get(name="knn").active_version == trained_knn
    admin_client.post(activate_url(second), {"reason": "k=9 is smoother"})
    assert MLModel.objects.get(name="knn").active_version == second


def test_a_broken_version_cannot_be_activated(admin_client, trained_knn):
    training_run_start(algorithm="knn", params={"n_neighbors": 9})
    ModelVersion.objects.filter(pk=trained_knn.pk).update(broken_reason="the file was tampered with")
    assert "cannot serve: the file was tampered with" in admin_client.get(activate_url(trained_knn)).content.decode()
    response = admin_client.post(activate_url(trained_knn), {"reason": "roll back"}, follow=True)
    assert "cannot be activated: the file was tampered with" in messages_of(response)[0]
    assert MLModel.objects.get(name="knn").active_version.number == 2


def test_activating_needs_the_permission(client, django_user_model, trained_knn):
    reader = django_user_model.objects.create_user(username="registry-reader", password="reader-pass-12", is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_modelversion"))  # may read, not activate
    client.force_login(reader)
    assert client.get(activate_url(trained_knn)).status_code == 403


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
    assert re.search(r"<td class=\"field-duration\">\d+\.\d\d s</td>", page)  # seconds to 2 decimals
    assert "<h1>Training runs</h1>" in page
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
            inputs=EXAMPLES["Adelie"],
            species_id=code,
            probabilities=None,
            latency_ms=1.5,
        )
        for code in species
    ]
    return Prediction.objects.bulk_create(rows)


def _listed_ids(response) -> list[int]:
    return [row.pk for row in response.context["cl"].result_list]


def test_predictions_are_read_only_but_for_feedback(admin_client, trained_knn):
    (row,) = _predictions(trained_knn, [1])
    page = admin_client.get(f"{PREDICTIONS}{row.pk}/change/").content.decode()
    assert "Adelie" in page and 'name="_save"' not in page
    assert admin_client.get(f"{PREDICTIONS}add/").status_code == 403
    assert admin_client.post(f"{PREDICTIONS}{row.pk}/delete/").status_code == 403


def test_a_predictions_page_shows_inputs_as_names_and_takes_feedback(admin_client, admin_user, trained_knn):
    row = Prediction.objects.create(
        model_id=trained_knn.model_id,
        version=trained_knn,
        created_at=timezone.now(),
        endpoint="predict",
        inputs={
            "island": 2,
            "bill_length_mm": 46.1,
            "bill_depth_mm": 13.2,
            "flipper_length_mm": 211.0,
            "body_mass_g": 4500.0,
            "sex": 0,
            "year": 2007,
        },
        species_id=3,
        probabilities={"Adelie": 0.0, "Chinstrap": 0.2, "Gentoo": 0.8},
        latency_ms=1.234,
    )
    page = admin_client.get(f"{PREDICTIONS}{row.pk}/change/").content.decode()
    assert f"<title>Prediction {row.pk} | Penguin Classifier admin</title>" in page
    for shown in ("Biscoe (2)", "female (0)", "46.1 mm", "4500 g", "2007", "0.8000", "1.2 ms"):
        assert shown in page, shown
    response = admin_client.post(f"{PREDICTIONS}{row.pk}/feedback/", {"species": "2"}, follow=True)
    assert "Recorded Chinstrap as the true species: the answer was wrong." in messages_of(response)[0]
    row.refresh_from_db()
    assert (row.true_species_id, row.feedback_by) == (2, admin_user)
    admin_client.post(f"{PREDICTIONS}{row.pk}/feedback/", {"species": "Gentoo"})  # a correction
    row.refresh_from_db()
    assert row.true_species_id == 3
    bad = admin_client.post(f"{PREDICTIONS}{row.pk}/feedback/", {"species": "Emperor"}, follow=True)
    assert "species: choose one of Adelie, Chinstrap, Gentoo." in messages_of(bad)
    assert admin_client.get(f"{PREDICTIONS}{row.pk}/feedback/").status_code == 405


def test_feedback_needs_the_permission(client, django_user_model, trained_knn):
    (row,) = _predictions(trained_knn, [1])
    reader = django_user_model.objects.create_user(username="log-reader", password="reader-pass-123", is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_prediction"))  # may read, not label
    client.force_login(reader)
    assert "feedback-form" not in client.get(f"{PREDICTIONS}{row.pk}/change/").content.decode()
    assert client.post(f"{PREDICTIONS}{row.pk}/feedback/", {"species": "1"}).status_code == 403
    row.refresh_from_db()
    assert row.true_species_id is None


def test_feedback_for_many_predictions_at_once_and_the_wrong_answers_filter(admin_client, trained_knn):
    rows = _predictions(trained_knn, [1, 2, 3, 3])
    action = {"action": "feedback_gentoo", "_selected_action": [row.pk for row in rows[1:]]}
    response = admin_client.post(PREDICTIONS, action, follow=True)
    assert "Recorded Gentoo as the true species of 3 prediction(s)." in messages_of(response)[0]
    assert [row.true_species_id for row in Prediction.objects.order_by("id")] == [None, 3, 3, 3]
    assert set(_listed_ids(admin_client.get(f"{PREDICTIONS}?answer=wrong"))) == {rows[1].pk}
    assert set(_listed_ids(admin_client.get(f"{PREDICTIONS}?answer=right"))) == {rows[2].pk, rows[3].pk}
    assert set(_listed_ids(admin_client.get(f"{PREDICTIONS}?answer=unlabelled"))) == {rows[0].pk}
    page = admin_client.get(PREDICTIONS).content.decode()
    assert "wrong answers" in page and "<h1>Predictions</h1>" in page


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


# --- champion and challenger --------------------------------------------------------------------


def test_versions_compare_side_by_side_with_non_default_parameters_marked(admin_client, trained_results):
    from tests.support.models import register_result
    from training.start import training_run_start

    register_result("knn", trained_results["knn"])
    training_run_start(algorithm="knn", params={"n_neighbors": 9})
    ids = list(ModelVersion.objects.filter(model__name="knn").values_list("pk", flat=True))
    response = admin_client.post(
        "/admin/classifier/modelversion/", {"action": "compare_selected", "_selected_action": ids}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Compare 2 versions" in page and "knn v1" in page and "knn v2" in page
    assert 'class="differs" style="font-weight: bold; background: #fff3cd">9</td>' in page
    assert "McNemar exact p" in page and "live accuracy" in page and "predictions" in page


def test_the_model_page_shows_the_ledger_and_the_challengers_record(admin_client, trained_results):
    from tests.support.models import register_result

    register_result("knn", trained_results["knn"])
    second = register_result("knn", trained_results["svm"], activate=False)
    response = admin_client.post(
        "/admin/classifier/modelversion/",
        {"action": "challenge_selected", "_selected_action": [second.pk]},
        follow=True,
    )
    assert any("now scores every prediction of knn in shadow" in text for text in messages_of(response))
    model = MLModel.objects.get(name="knn")
    page = admin_client.get(f"/admin/classifier/mlmodel/{model.pk}/change/").content.decode()
    assert "Activation history: what was live" in page and "Challenger&#x27;s record" in page
    assert "not enough labels" in page and "knn v2</a> since" in page
