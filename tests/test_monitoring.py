"""Monitoring scenarios: penguins logged against a version, the report a user reads back."""

from __future__ import annotations

import re

import numpy as np
import pytest
from django.utils import timezone

from classifier.models import Prediction
from classifier.services.monitoring import monitoring_report
from core.datasets import dataset_load
from core.encoding import FIELDS

from .conftest import DATA

BODY_MASS, FLIPPER, BILL_LENGTH, BILL_DEPTH = (
    FIELDS.index(name) for name in ("body_mass_g", "flipper_length_mm", "bill_length_mm", "bill_depth_mm")
)


@pytest.fixture(scope="module")
def penguins():
    dataset = dataset_load(DATA)
    return dataset.features(), dataset.target()


@pytest.fixture
def monitored(knn_model):
    """The knn model's active version; training kept its training split as the reference."""
    return knn_model


def log(version, features: np.ndarray, species: np.ndarray, truth: np.ndarray | None = None, *, when=None):
    when = when or timezone.now()
    rows = [
        Prediction(
            model_id=version.model_id,
            version=version,
            created_at=when,
            endpoint="predict",
            **dict(zip(FIELDS, row)),
            species_id=int(code),
            true_species_id=None if truth is None or not truth[i] else int(truth[i]),
            latency_ms=0.5 + i % 7,
        )
        for i, (row, code) in enumerate(zip(features.tolist(), species.tolist()))
    ]
    Prediction.objects.bulk_create(rows)


def sample(penguins, count=300, seed=1):
    features, target = penguins
    chosen = np.random.default_rng(seed).choice(len(features), count, replace=False)
    return features[chosen].copy(), target[chosen].copy()


def report_of(version):
    return monitoring_report(model=version.model, version=version)


def flagged(report) -> list[str]:
    return [feature["name"] for feature in report["features"] if feature["drift"]]


def test_a_trained_version_keeps_its_training_rows_as_reference(monitored):
    profile = monitored.reference
    assert (profile["source"], profile["rows"]) == ("training split", 266)
    assert sum(profile["class_counts"].values()) == 266
    assert list(profile["values"]) == list(FIELDS) and len(profile["values"]["body_mass_g"]) == 266


def test_a_version_without_a_profile_is_compared_with_the_shipped_dataset(monitored, penguins):
    monitored.reference = {}
    monitored.save(update_fields=["reference"])
    log(monitored, *sample(penguins))
    report = report_of(monitored)
    assert report["reference"] == {"source": "shipped dataset", "rows": 333}
    assert report["verdict"] == "no_drift"


def test_no_reference_when_the_shipped_dataset_is_unusable(monitored, penguins, settings, tmp_path):
    monitored.reference = {}
    monitored.save(update_fields=["reference"])
    settings.PENGUIN_DATA_PATH = tmp_path / "missing.csv"
    log(monitored, *sample(penguins, count=40))
    report = report_of(monitored)
    assert (report["verdict"], report["reference"], report["dataset_drift"]) == ("no_reference", None, None)
    assert "shipped dataset is unusable" in report["message"]
    assert report["live_accuracy"]["labelled"] == 0


def test_penguins_from_the_dataset_do_not_drift(monitored, penguins):
    features, truth = sample(penguins)
    log(monitored, features, truth)
    report = report_of(monitored)
    assert report["verdict"] == "no_drift"
    assert report["dataset_drift"] is False
    assert report["window"]["predictions"] == 300
    assert report["reference"] == {"source": "training split", "rows": 266}
    assert [feature["name"] for feature in report["features"]] == list(FIELDS)
    assert [feature["test"] for feature in report["features"]] == ["chi2", "ks", "ks", "ks", "ks", "z", "chi2"]
    assert report["prediction_drift"]["drift"] is False


def test_heavier_penguins_with_longer_flippers_flag_two_features_without_dataset_drift(monitored, penguins):
    features, truth = sample(penguins)
    features[:, BODY_MASS] *= 1.25
    features[:, FLIPPER] += 20
    log(monitored, features, truth)
    report = report_of(monitored)
    assert flagged(report) == ["flipper_length_mm", "body_mass_g"]
    assert report["drift_share"] == pytest.approx(2 / 7)
    assert (report["verdict"], report["dataset_drift"]) == ("no_drift", False)


def test_four_shifted_measurements_are_dataset_drift(monitored, penguins):
    features, truth = sample(penguins)
    features[:, BODY_MASS] *= 1.25
    features[:, FLIPPER] += 20
    features[:, BILL_LENGTH] += 6
    features[:, BILL_DEPTH] -= 2
    log(monitored, features, truth)
    report = report_of(monitored)
    assert flagged(report) == ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    assert (report["verdict"], report["dataset_drift"], report["drift_share"]) == ("drift", True, 4 / 7)


def test_gentoo_only_traffic_is_prediction_drift(monitored, penguins):
    features, target = penguins
    gentoo = features[target == 3]
    chosen = np.random.default_rng(2).choice(len(gentoo), 300, replace=True)
    log(monitored, gentoo[chosen], np.full(300, 3))
    report = report_of(monitored)
    assert report["prediction_drift"]["drift"] is True
    assert report["prediction_drift"]["current"] == {"Adelie": 0.0, "Chinstrap": 0.0, "Gentoo": 1.0}
    assert report["prediction_drift"]["p_value"] < 1e-10


def test_29_predictions_are_not_enough_data(monitored, penguins):
    features, truth = sample(penguins, count=29)
    log(monitored, features, truth)
    report = report_of(monitored)
    assert report["verdict"] == "not_enough_data"
    assert (report["dataset_drift"], report["drift_share"], report["features"]) == (None, None, [])
    assert report["needed"] == 1
    assert "1 more needed" in report["message"]


def test_live_accuracy_of_100_labelled_with_90_correct(monitored, penguins):
    features, truth = sample(penguins)
    predicted = truth.copy()
    labels = np.zeros(300, dtype=int)
    labels[:100] = truth[:100]
    predicted[:10] = np.where(truth[:10] == 1, 2, 1)  # 10 wrong answers among the labelled
    log(monitored, features, predicted, labels)
    accuracy = report_of(monitored)["live_accuracy"]
    assert (accuracy["labelled"], accuracy["correct"], accuracy["accuracy"]) == (100, 90, 0.9)
    assert (round(accuracy["ci_low"], 4), round(accuracy["ci_high"], 4)) == (0.8256, 0.9448)
    assert accuracy["coverage"] == pytest.approx(100 / 300)


def test_no_feedback_means_no_accuracy_and_the_reason(monitored, penguins):
    features, truth = sample(penguins, count=40)
    log(monitored, features, truth)
    accuracy = report_of(monitored)["live_accuracy"]
    assert (accuracy["labelled"], accuracy["accuracy"], accuracy["ci_low"]) == (0, None, None)
    assert "feedback" in accuracy["reason"]


def test_the_window_keeps_the_most_recent_rows_up_to_the_maximum(monitored, penguins, settings):
    settings.PENGUIN_MONITOR_MAX_ROWS = 50
    features, truth = sample(penguins, count=80)
    log(monitored, features, truth, when=timezone.now() - timezone.timedelta(days=8))  # outside the window
    log(monitored, features, truth)
    report = report_of(monitored)
    assert report["window"]["predictions"] == 50
    assert report["window"]["capped"] is True
    assert sum(day["predictions"] for day in report["daily"]) == 50
    assert report["latency_ms"]["p50"] is not None


# ---- scheduled checks, /metrics, retraining on drift ----------------------------------------


def drifted(penguins):
    features, truth = sample(penguins)
    features[:, BODY_MASS] *= 1.25
    features[:, FLIPPER] += 20
    features[:, BILL_LENGTH] += 6
    features[:, BILL_DEPTH] -= 2
    return features, truth


def test_monitor_models_stores_a_report_per_active_version(monitored, penguins, caplog):
    from io import StringIO

    from django.core.management import call_command

    from classifier.models import MonitoringReport

    log(monitored, *drifted(penguins))
    out = StringIO()
    call_command("monitor_models", stdout=out)
    check = MonitoringReport.objects.get()
    assert (check.version, check.verdict, check.dataset_drift) == (monitored, "drift", True)
    assert check.drifted_features == ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    assert check.report["window"]["predictions"] == 300
    assert "knn v1: drift" in out.getvalue()
    assert "knn v1 has dataset drift (4 of 7 features" in caplog.text


def test_metrics_show_the_latest_check(monitored, penguins, client):
    from classifier.services.monitoring import monitoring_check

    features, truth = drifted(penguins)
    labels = truth.copy()
    labels[100:] = 0
    log(monitored, features, truth, labels)
    monitoring_check(model=monitored.model)
    text = client.get("/metrics").content.decode()
    assert 'penguin_model_drift{model="knn",version="1"} 1.0' in text
    assert 'penguin_model_drift_share{model="knn",version="1"} 0.571' in text
    assert 'penguin_model_live_accuracy{model="knn",version="1"} 1.0' in text
    assert 'penguin_model_labelled{model="knn",version="1"} 100.0' in text


def test_beat_sends_the_monitoring_task_at_the_configured_interval(settings):
    from penguinsite.celery import app

    schedule = settings.CELERY_BEAT_SCHEDULE["monitor-models"]
    assert schedule == {"task": "classifier.monitor_models", "schedule": float(settings.PENGUIN_MONITOR_INTERVAL)}
    app.loader.import_default_modules()
    assert "classifier.monitor_models" in app.tasks


def test_two_drifting_checks_in_a_row_start_one_training_run(
    monitored, penguins, settings, django_capture_on_commit_callbacks
):
    from classifier.services.monitoring import monitoring_check
    from training.models import TrainingRun

    settings.PENGUIN_RETRAIN_ON_DRIFT = True
    log(monitored, *drifted(penguins))
    with django_capture_on_commit_callbacks(execute=True):
        monitoring_check(model=monitored.model)
    assert not TrainingRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        monitoring_check(model=monitored.model)
    run = TrainingRun.objects.get()
    assert (run.model_name, run.algorithm, run.trigger) == ("knn", "knn", "drift")


# ---- the admin ---------------------------------------------------------------------------------


def test_admin_monitoring_page_shows_the_drift_mix_accuracy_and_histograms(admin_client, monitored, penguins):
    features, truth = drifted(penguins)
    labels = truth.copy()
    labels[100:] = 0
    log(monitored, features, truth, labels)
    page = admin_client.get(f"/admin/classifier/mlmodel/{monitored.model_id}/monitoring/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "DRIFT" in text and "Drifting features: 4 of 7" in text
    assert re.search(r"Predicted species mix: (<strong>drift</strong>|no drift) \(chi-squared p = [0-9.e+-]+\)", text)
    assert re.search(r"from \d{4}-\d\d-\d\d \d\d:\d\d to \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    assert re.search(r'name="since" value="\d{4}-\d\d-\d\dT\d\d:\d\d"', text)  # the window in use
    assert "Predictions per day" in text and "Predicted species mix against training" in text
    assert "95% Wilson interval" in text and "Live accuracy (labelled predictions)" in text
    for name in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"):
        assert f"{name}: ks p = " in text  # each drifted feature's histogram, titled with its test
    assert "island: " not in text
    assert text.count("<div><svg") == 4  # volume, mix, accuracy, and the drifted features histograms


def test_admin_check_now_stores_a_report_and_the_model_list_shows_the_badge(admin_client, monitored, penguins):
    log(monitored, *drifted(penguins))
    assert "not checked yet" in admin_client.get("/admin/classifier/mlmodel/").content.decode()
    response = admin_client.post(f"/admin/classifier/mlmodel/{monitored.model_id}/monitoring/")
    assert response.status_code == 302
    listing = admin_client.get("/admin/classifier/mlmodel/").content.decode()
    assert ">drift</span> v1" in listing
    history = admin_client.get(response["Location"]).content.decode()
    assert "Checks history" in history and "bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g" in history


def test_admin_version_page_shows_live_accuracy_count_and_feedback_confusion_matrix(admin_client, monitored, penguins):
    features, truth = sample(penguins, count=120)
    predicted = truth.copy()
    predicted[:10] = np.where(truth[:10] == 1, 2, 1)
    labels = truth.copy()
    labels[100:] = 0
    log(monitored, features, predicted, labels)
    text = admin_client.get(f"/admin/classifier/modelversion/{monitored.pk}/change/").content.decode()
    assert "120 predictions logged" in text
    assert "90 of 100 labelled correct: <strong>0.900</strong>" in text
    assert "0.826 – 0.945" in text
    assert "Feedback on knn v1: 100 labelled" in text


# ---- the API -----------------------------------------------------------------------------------

MONITORING = "/api/v1/models/knn/monitoring"


@pytest.fixture
def reader(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def test_api_answers_the_same_numbers_as_the_service(reader, monitored, penguins):
    features, truth = drifted(penguins)
    labels = truth.copy()
    labels[100:] = 0
    log(monitored, features, truth, labels)
    response = reader.get(MONITORING)
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["version"], body["verdict"], body["dataset_drift"]) == ("knn", 1, "drift", True)
    assert body["window"]["predictions"] == 300
    assert body["reference"] == {"source": "training split", "rows": 266}
    assert [feature["name"] for feature in body["features"] if feature["drift"]] == [
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
    ]
    assert set(body["prediction_drift"]) >= {"test", "p_value", "drift", "current", "reference"}
    assert body["live_accuracy"]["labelled"] == 100 and body["live_accuracy"]["coverage"] == pytest.approx(1 / 3)
    assert set(body["latency_ms"]) == {"p50", "p95"}
    assert body["daily"][0]["predictions"] == 300
    service = report_of(monitored)
    assert body["features"] == service["features"] and body["drift_share"] == service["drift_share"]


def test_api_window_and_version_parameters(reader, monitored, penguins):
    features, truth = sample(penguins, count=60)
    old = timezone.now() - timezone.timedelta(days=20)
    log(monitored, features, truth, when=old)
    assert reader.get(MONITORING).json()["verdict"] == "not_enough_data"
    since = (old - timezone.timedelta(days=1)).isoformat()
    until = (old + timezone.timedelta(days=1)).isoformat()
    body = reader.get(MONITORING, {"since": since, "until": until, "version": 1}).json()
    assert (body["window"]["predictions"], body["verdict"]) == (60, "no_drift")


@pytest.mark.parametrize(
    ("params", "field"),
    [({"version": "x"}, "version"), ({"since": "yesterday"}, "since"), ({"until": "2026-13-01"}, "until")],
)
def test_api_bad_parameters_are_400_naming_the_field(reader, monitored, params, field):
    response = reader.get(MONITORING, params)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_api_since_after_until_is_400(reader, monitored):
    response = reader.get(MONITORING, {"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"})
    assert response.status_code == 400
    assert "since" in response.json()["errors"]


def test_api_unknown_version_or_model_is_404(reader, monitored):
    assert reader.get(MONITORING, {"version": 9}).json()["code"] == "version_not_found"
    assert reader.get("/api/v1/models/nope/monitoring").status_code == 404


def test_api_monitoring_needs_a_login(api_client, monitored):
    assert api_client.get(MONITORING).status_code in (401, 403)


def test_an_empty_window_is_not_enough_data_with_every_section_present(reader, monitored):
    body = reader.get(MONITORING).json()
    assert (body["verdict"], body["window"]["predictions"], body["needed"]) == ("not_enough_data", 0, 30)
    assert body["live_accuracy"]["coverage"] is None and body["latency_ms"] == {"p50": None, "p95": None}
    assert body["daily"] == []
