"""The trainer and the registry: metrics, artifacts, immutable versions."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.model_selection import StratifiedKFold, cross_val_score

from classifier.models import ModelVersion
from core.datasets import dataset_load
from tests.support.data import DATA, DATA_V1
from training.catalogue import CATALOGUE, ParamError
from training.models import TrainingRun
from training.start import training_run_start
from training.trainer import train


@pytest.mark.parametrize("algorithm", list(CATALOGUE))
def test_metrics_equal_scikit_learns_on_the_same_split(trained_results, algorithm):
    result = trained_results[algorithm]
    dataset = dataset_load(DATA)
    x, y = dataset.features(), dataset.target()
    train_rows, test_rows = result.holdout.train_index, result.holdout.test_index
    x_train, x_test, y_train, y_test = x[train_rows], x[test_rows], y[train_rows], y[test_rows]
    predicted = result.pipeline.predict(x_test)
    assert result.n_train == len(y_train) and result.n_test == len(y_test)
    assert result.metrics["test_accuracy"] == pytest.approx(accuracy_score(y_test, predicted))
    assert result.metrics["train_accuracy"] == pytest.approx(accuracy_score(y_train, result.pipeline.predict(x_train)))
    assert result.metrics["test_precision"] == pytest.approx(precision_score(y_test, predicted, average="weighted"))
    assert result.metrics["test_recall"] == pytest.approx(recall_score(y_test, predicted, average="weighted"))
    assert result.metrics["test_f1"] == pytest.approx(f1_score(y_test, predicted, average="weighted"))
    matrix = np.array(result.confusion_matrix["matrix"])
    assert matrix.sum() == len(y_test) and np.trace(matrix) == (predicted == y_test).sum()
    assert result.confusion_matrix["labels"] == ["Adelie", "Chinstrap", "Gentoo"]


def test_cross_validation_is_measured_on_the_training_part(trained_results):
    result = trained_results["knn"]
    dataset = dataset_load(DATA)
    x, y = dataset.features(), dataset.target()
    x_train, y_train = x[result.holdout.train_index], y[result.holdout.train_index]
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
    scores = cross_val_score(CATALOGUE["knn"].build(), x_train, y_train, cv=folds)
    assert result.metrics["cv_accuracy_mean"] == pytest.approx(scores.mean())
    assert result.metrics["cv_accuracy_std"] == pytest.approx(scores.std())


def test_default_hyperparameters_follow_the_catalogue(trained_results):
    forest = trained_results["randomforest"].estimator_params
    assert (forest["n_estimators"], forest["max_depth"], forest["random_state"]) == (100, 10, 42)
    boosting = trained_results["gradientboosting"].estimator_params
    assert (boosting["n_estimators"], boosting["max_depth"], boosting["learning_rate"]) == (100, 5, 0.1)
    assert trained_results["svm"].estimator_params["kernel"] == "rbf"
    assert trained_results["knn"].estimator_params["n_neighbors"] == 5
    assert list(trained_results["knn"].pipeline.named_steps) == ["scaler", "estimator"]


def test_the_split_is_stratified(trained_results):
    report = trained_results["knn"].classification_report
    dataset = dataset_load(DATA)
    share = {name: (dataset.frame["species"] == name).mean() for name in ("Adelie", "Chinstrap", "Gentoo")}
    n_test = trained_results["knn"].n_test
    for name, fraction in share.items():
        assert abs(report[name]["support"] - fraction * n_test) <= 1


def test_training_on_the_v1_file_gives_the_same_model(trained_results):
    result = train(algorithm="knn", dataset=dataset_load(DATA_V1))
    assert result.metrics == pytest.approx(trained_results["knn"].metrics)


def test_a_bad_parameter_value_is_refused_before_training():
    with pytest.raises(ParamError) as error:
        train(algorithm="knn", dataset=dataset_load(DATA), params={"n_neighbors": -1})
    assert error.value.field == "n_neighbors"


@pytest.mark.django_db
def test_the_artifact_hash_matches_the_file_on_disk(artifacts_dir):
    run = training_run_start(algorithm="knn")
    assert run.status == TrainingRun.Status.SUCCEEDED
    version = run.version
    path = artifacts_dir / version.artifact_path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == version.sha256
    assert version.size_bytes == path.stat().st_size
    assert version.library_versions["scikit-learn"]
    assert version.dataset["sha256"] == hashlib.sha256(DATA.read_bytes()).hexdigest()
    assert (artifacts_dir / version.confusion_matrix_path).read_bytes().startswith(b"\x89PNG")
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.django_db
def test_retraining_makes_version_2_and_keeps_version_1s_file(artifacts_dir):
    first = training_run_start(algorithm="knn").version
    first_bytes = (artifacts_dir / first.artifact_path).read_bytes()
    second = training_run_start(algorithm="knn", params={"n_neighbors": 7}).version
    assert (first.number, second.number) == (1, 2)
    assert second.artifact_path != first.artifact_path
    assert (artifacts_dir / first.artifact_path).read_bytes() == first_bytes
    assert hashlib.sha256(first_bytes).hexdigest() == ModelVersion.objects.get(pk=first.pk).sha256
    assert second.model.active_version_id == second.pk
