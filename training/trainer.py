"""The trainer: a fair stratified split, a fitted pipeline and its metrics. No database here.

The split is decided by the data and ``split_seed`` (``training.holdout``); ``seed`` is
the estimator's randomness only, so retraining with another seed keeps the same test rows.

``train`` is pure computation; ``training.services`` turns its result into a registered
version, so the admin, the API, the command and the notebook all share one path.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

from classifier.monitoring.reference import profile_build
from core.datasets import Dataset
from core.encoding import FIELDS, SPECIES, SPECIES_IDS

from .catalogue import ParamError, algorithm_get
from .holdout import DEFAULT_SPLIT_SEED, Holdout, holdout_split

CV_FOLDS = 5


@dataclass
class TrainingResult:
    algorithm: str
    params: dict[str, Any]  # what the user asked for
    estimator_params: dict[str, Any]  # every parameter of the fitted estimator
    pipeline: Pipeline
    metrics: dict[str, float]
    classification_report: dict[str, Any]
    confusion_matrix: dict[str, Any]  # {"labels": [...names], "matrix": [[...]]}
    classes: list[str]
    class_values: list[int]
    feature_names: list[str]
    n_train: int
    n_test: int
    seed: int
    test_size: float
    split_seed: int
    holdout: Holdout
    dataset: dict[str, Any]
    seconds: float
    reference: dict[str, Any] = field(default_factory=dict)  # the training rows, for monitoring


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return repr(value)


def train(
    *,
    algorithm: str,
    dataset: Dataset,
    params: dict[str, Any] | None = None,
    test_size: float = 0.2,
    seed: int = 42,
    split_seed: int = DEFAULT_SPLIT_SEED,
) -> TrainingResult:
    """Fit ``algorithm`` on the fair holdout split of ``dataset`` and measure it.

    ``seed`` seeds the estimator; ``split_seed`` (with the rows themselves) decides the
    test rows and the cross-validation folds.
    """
    if not 0.05 <= test_size <= 0.5:
        raise ParamError("test_size", f"test_size must be between 0.05 and 0.5; got {test_size}.")
    started = time.perf_counter()
    spec = algorithm_get(algorithm)
    pipeline = spec.build(params, seed=seed)

    features, target = dataset.features(), dataset.target()
    holdout = holdout_split(features=features, target=target, test_size=test_size, split_seed=split_seed)
    x_train, x_test = features[holdout.train_index], features[holdout.test_index]
    y_train, y_test = target[holdout.train_index], target[holdout.test_index]
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=split_seed)
    with warnings.catch_warnings():
        # SVC(probability=True) is deprecated from scikit-learn 1.9 (removed in 1.11); the
        # pinned version still supports it and the earlier service's svm used it.
        warnings.filterwarnings("ignore", message=".*probability.*", category=FutureWarning)
        # error_score="raise": a fold that fails (or a worker's soft time limit firing inside
        # it) must stop the training, not turn silently into a NaN score.
        cv_scores = cross_val_score(pipeline, x_train, y_train, cv=folds, scoring="accuracy", error_score="raise")
        pipeline.fit(x_train, y_train)

    train_pred = pipeline.predict(x_train)
    test_pred = pipeline.predict(x_test)
    labels = list(SPECIES_IDS)
    metrics = {
        "train_accuracy": accuracy_score(y_train, train_pred),
        "test_accuracy": accuracy_score(y_test, test_pred),
        "test_precision": precision_score(y_test, test_pred, average="weighted", zero_division=0),
        "test_recall": recall_score(y_test, test_pred, average="weighted", zero_division=0),
        "test_f1": f1_score(y_test, test_pred, average="weighted", zero_division=0),
        "cv_accuracy_mean": float(np.mean(cv_scores)),
        "cv_accuracy_std": float(np.std(cv_scores)),
    }
    report = classification_report(
        y_test,
        test_pred,
        labels=labels,
        target_names=[SPECIES[code] for code in labels],
        output_dict=True,
        zero_division=0,
    )
    matrix = confusion_matrix(y_test, test_pred, labels=labels)
    class_values = [int(value) for value in pipeline.classes_]
    return TrainingResult(
        algorithm=spec.name,
        params=_jsonable(dict(params or {})),
        estimator_params=_jsonable(pipeline.named_steps["estimator"].get_params()),
        pipeline=pipeline,
        metrics={name: float(value) for name, value in metrics.items()},
        classification_report=_jsonable(report),
        confusion_matrix={"labels": [SPECIES[code] for code in labels], "matrix": matrix.tolist()},
        classes=[SPECIES[value] for value in class_values],
        class_values=class_values,
        feature_names=list(FIELDS),
        n_train=len(y_train),
        n_test=len(y_test),
        seed=seed,
        test_size=test_size,
        split_seed=split_seed,
        holdout=holdout,
        dataset=dataset.describe(),
        seconds=time.perf_counter() - started,
        reference=profile_build(x_train, y_train, fields=FIELDS),
    )
