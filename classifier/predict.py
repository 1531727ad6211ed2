"""Classify and log: the one path every door (API v1, the compatible endpoints) scores through."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from core.encoding import SPECIES

from . import artifacts, metrics
from .estimators import ModelUnusable
from .selectors import ServingEntry
from .services.predictions import prediction_log
from .services.registry import ModelBroken, NoProbabilities, model_version_mark_broken
from .serving import LoadedModel, load_entry
from .serving_registry import live_registry


@dataclass
class PredictionOutcome:
    model_name: str
    version_id: int
    version_number: int
    species_ids: np.ndarray
    probabilities: np.ndarray | None
    prediction_ids: list[int]

    def species_names(self) -> list[str]:
        return [SPECIES[code] for code in self.species_ids.tolist()]


def prediction_make(
    *,
    model_name: str,
    matrix: np.ndarray,
    endpoint: str,
    version_number: int | None = None,
    with_probabilities: bool = False,
    started: float | None = None,
) -> PredictionOutcome:
    """Classify parsed rows with the model's active (or given) version and log every row.

    The rows are written before this returns; if they cannot be, it raises and no answer
    is given. Raises ModelNotFound, ModelBroken or NoProbabilities with a user-safe reason.
    """
    started = time.perf_counter() if started is None else started
    entry = live_registry.entry(model_name, version_number=version_number)
    loaded = _load_entry(entry)
    if with_probabilities and not loaded.has_proba:
        raise NoProbabilities(
            f"{model_name} v{entry.number} ({entry.estimator or 'this estimator'}) does not estimate probabilities."
        )
    species, probabilities = loaded.predict_with_proba(matrix, with_proba=with_probabilities)
    latency_ms = (time.perf_counter() - started) * 1000.0
    ids = prediction_log(
        model_id=entry.model_id,
        version_id=entry.version_id,
        matrix=matrix,
        species_ids=species,
        probabilities=probabilities,
        latency_ms=latency_ms,
        endpoint=endpoint,
    )
    metrics.predictions_record(model_name=entry.model_name, version_number=entry.number, species_ids=species)
    return PredictionOutcome(
        model_name=entry.model_name,
        version_id=entry.version_id,
        version_number=entry.number,
        species_ids=species,
        probabilities=probabilities,
        prediction_ids=ids,
    )


def _load_entry(entry: ServingEntry) -> LoadedModel:
    if entry.broken_reason:
        raise ModelBroken(f"{entry.model_name} v{entry.number} cannot serve: {entry.broken_reason}.")
    try:
        return load_entry(entry)
    except (artifacts.ArtifactError, ModelUnusable) as exc:
        model_version_mark_broken(version_id=entry.version_id, reason=str(exc))
        raise ModelBroken(f"{entry.model_name} v{entry.number} cannot serve: {exc}.") from None
