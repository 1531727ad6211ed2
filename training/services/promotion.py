"""What a finished training hands to the registry, and whether the new version serves.

The promotion gate: when a trained candidate is about to be registered and its model has an
active version (the champion), both answer the candidate's test rows that the champion did
not train on:

- all of them when the two share a holdout (same rows, split seed and test size);
- the intersection when the split differs (another split seed, test size or data file);
- all of them, saying so, when the champion's training rows are unknown (a version
  registered before splits were recorded, or a file discovered on disk).

``training.evaluation.promotion_evaluate`` turns the answers into the recorded
``evaluation`` and the decision.
"""

from __future__ import annotations

import io
import logging
import platform
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from classifier import artifacts
from classifier.estimators import estimator_name
from classifier.models import MLModel, ModelVersion
from classifier.selectors import serving_entry
from classifier.services.registry import NewVersion
from classifier.serving import load_entry
from core.datasets import Dataset
from core.hashing import sha256_bytes

from ..evaluation import MarginRule, promotion_evaluate
from ..models import ActivationMode
from ..trainer import TrainingResult

logger = logging.getLogger(__name__)


def library_versions() -> dict[str, str]:
    import joblib
    import numpy
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "joblib": joblib.__version__,
    }


def confusion_matrix_png(result: TrainingResult, title: str) -> bytes:
    """A picture of the test-set confusion matrix, for the admin."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = result.confusion_matrix["labels"]
    matrix = result.confusion_matrix["matrix"]
    figure = Figure(figsize=(4.2, 3.6), dpi=100)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    axes.set_xticks(range(len(labels)), labels=labels)
    axes.set_yticks(range(len(labels)), labels=labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            axes.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def identical_version_find(*, model_name: str, result: TrainingResult) -> ModelVersion | None:
    """An existing version of the model whose artifact has the same bytes as the new pipeline's."""
    sha256 = sha256_bytes(artifacts.dump(result.pipeline))
    return ModelVersion.objects.filter(model__name=model_name, sha256=sha256).order_by("number").first()


def new_version_info(
    result: TrainingResult, *, extra_files: dict[str, bytes] | None = None, evaluation: dict | None = None
) -> NewVersion:
    """What the registry stores about a trained pipeline, besides the file itself."""
    return NewVersion(
        algorithm=result.algorithm,
        params=result.estimator_params,
        metrics=result.metrics,
        classification_report=result.classification_report,
        confusion_matrix=result.confusion_matrix,
        classes=result.classes,
        class_values=result.class_values,
        feature_names=result.feature_names,
        dataset={
            **result.dataset,
            "test_size": result.test_size,
            "seed": result.seed,
            "split_seed": result.split_seed,
            "fingerprint": result.holdout.fingerprint,
        },
        holdout=result.holdout.record(),
        evaluation=evaluation or {},
        n_train=result.n_train,
        n_test=result.n_test,
        training_seconds=result.seconds,
        library_versions=library_versions(),
        estimator=estimator_name(result.pipeline),
        extra_files=extra_files or {},
        reference=result.reference,
    )


@dataclass(frozen=True)
class Promotion:
    activate: bool
    note: str
    evaluation: dict


@dataclass(frozen=True)
class ComparableRows:
    features: np.ndarray
    truth: np.ndarray
    basis: str


def comparable_rows(*, result: TrainingResult, dataset: Dataset, champion: ModelVersion) -> ComparableRows:
    """The candidate's test rows the champion did not train on, and how they were chosen."""
    holdout = result.holdout
    features = dataset.features()[holdout.test_index]
    truth = dataset.target()[holdout.test_index]
    champion_train = (champion.holdout or {}).get("train_keys")
    if champion_train is None:
        why = "discovered on disk" if champion.source == ModelVersion.Source.DISCOVERED else "registered before splits"
        basis = f"the candidate's holdout; v{champion.number}'s training rows are unknown ({why})"
        return ComparableRows(features, truth, basis)
    if sorted(holdout.test_keys) == (champion.holdout or {}).get("test_keys"):
        return ComparableRows(features, truth, "the holdout both share")
    trained_on = set(champion_train)
    keep = np.array([key not in trained_on for key in holdout.test_keys], dtype=bool)
    basis = f"the {int(keep.sum())} of the candidate's {len(keep)} test rows v{champion.number} did not train on"
    return ComparableRows(features[keep], truth[keep], basis)


def promotion_decide(*, model_name: str, result: TrainingResult, dataset: Dataset, policy: str) -> Promotion:
    """Whether the candidate in ``result`` replaces the model's champion, with the evidence."""
    model = MLModel.objects.select_related("active_version").filter(name=model_name).first()
    champion = model.active_version if model else None
    if champion is None or champion.broken_reason:
        if policy == ActivationMode.NEVER:
            return Promotion(False, "not activated: policy never (no serving version to compare with)", {})
        return Promotion(True, "activated: no serving version before it", {})
    try:
        champion_model = load_entry(serving_entry(champion))
    except Exception as exc:  # a champion that cannot load cannot hold the candidate back
        logger.warning("promotion gate: champion %s cannot answer: %s", champion, exc)
        if policy == ActivationMode.NEVER:
            return Promotion(False, "not activated: policy never", {})
        return Promotion(True, f"activated: the champion v{champion.number} cannot answer ({exc})", {})

    rows = comparable_rows(result=result, dataset=dataset, champion=champion)
    if len(rows.truth):
        candidate_answers = result.pipeline.predict(rows.features)
        champion_answers = champion_model.predict(rows.features)
    else:
        candidate_answers = champion_answers = np.array([], dtype=int)
    evaluation = promotion_evaluate(
        policy=policy,
        truth=rows.truth.tolist(),
        candidate=[int(value) for value in candidate_answers],
        champion=[int(value) for value in champion_answers],
        against_version=champion.number,
        rows_basis=rows.basis,
        margin_rule=MarginRule(
            candidate_f1=result.metrics.get("test_f1"),
            champion_f1=(champion.metrics or {}).get("test_f1"),
            margin=settings.PENGUIN_PROMOTION_MARGIN,
        ),
    )
    return Promotion(evaluation["activated"], evaluation["reason"], evaluation)
