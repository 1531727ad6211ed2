"""The promotion gate: a candidate and the champion scored on the same rows.

When a trained candidate is about to be registered and its model has an active version
(the champion), both answer the candidate's test rows that the champion did not train on:

- all of them when the two share a holdout (same rows, split seed and test size);
- the intersection when the split differs (another split seed, test size or data file);
- all of them, saying so, when the champion's training rows are unknown (a version
  registered before splits were recorded, or a file discovered on disk).

``promotion_evaluate`` turns the answers into the recorded ``evaluation`` and the decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from classifier.artifacts import ArtifactError
from classifier.models import MLModel, ModelVersion
from classifier.selectors import serving_entry
from classifier.serving import ModelUnusable, load_entry

from .datasets import Dataset
from .evaluation import MarginRule, promotion_evaluate
from .models import ActivationMode
from .trainer import TrainingResult

logger = logging.getLogger(__name__)


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
    except (ArtifactError, ModelUnusable) as exc:
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
