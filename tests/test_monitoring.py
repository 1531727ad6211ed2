"""Monitoring scenarios: penguins logged against a version, the report a user reads back."""

from __future__ import annotations

import numpy as np
import pytest
from django.utils import timezone
from sklearn.model_selection import train_test_split

from classifier.encoding import FIELDS
from classifier.models import Prediction
from classifier.monitoring.reference import profile_build
from classifier.monitoring.service import monitoring_report
from training.datasets import dataset_load

from .conftest import DATA

BODY_MASS, FLIPPER, BILL_LENGTH, BILL_DEPTH = (
    FIELDS.index(name) for name in ("body_mass_g", "flipper_length_mm", "bill_length_mm", "bill_depth_mm")
)


@pytest.fixture(scope="module")
def penguins():
    dataset = dataset_load(DATA)
    return dataset.features(), dataset.target()


@pytest.fixture
def monitored(knn_model, penguins):
    """The knn model's active version, with its training split as the reference profile."""
    features, target = penguins
    x_train, _, y_train, _ = train_test_split(features, target, test_size=0.2, stratify=target, random_state=42)
    version = knn_model
    version.reference = profile_build(x_train, y_train, fields=FIELDS)
    version.save(update_fields=["reference"])
    return version


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
