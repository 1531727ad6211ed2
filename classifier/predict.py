"""Classify and log: the one path every door (API v1, the compatible endpoints) scores through."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.encoding import SPECIES

from . import artifacts, metrics
from .estimators import ModelUnusable
from .prediction_log import STREAM_BLOCK_ROWS, LogBlock
from .selectors import ServingEntry
from .services.predictions import (
    prediction_ids_reserve,
    prediction_log,
    prediction_log_stream,
    prediction_log_streams,
)
from .services.registry import ModelBroken, NoProbabilities, model_version_mark_broken, model_version_restore
from .serving import LoadedModel, load_entry
from .serving_registry import live_registry

logger = logging.getLogger(__name__)

# What a door makes of consecutive answered rows for its answer: given their logged ids,
# species and probabilities (None without), it returns one item per row.
RowsAnswer = Callable[[list[int], np.ndarray, "np.ndarray | None"], list]


@dataclass
class PredictionOutcome:
    model_name: str
    version_id: int
    version_number: int
    species_ids: np.ndarray
    probabilities: np.ndarray | None
    prediction_ids: list[int]
    # What ``rows_answer`` made of every row, in row order (None when none was given).
    answers: list | None = None

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
    rows_answer: RowsAnswer | None = None,
) -> PredictionOutcome:
    """Classify parsed rows with the model's active (or given) version and log every row.

    The rows are written before this returns; if they cannot be, it raises and no answer
    is given. Raises ModelNotFound, ModelBroken or NoProbabilities with a user-safe reason.
    ``rows_answer`` builds the door's answer for the rows (``PredictionOutcome.answers``): a
    batch streamed to the log builds it block by block while PostgreSQL stores the rows.
    """
    started = time.perf_counter() if started is None else started
    entry = live_registry.entry(model_name, version_number=version_number)
    loaded = _load_entry(entry)
    if with_probabilities and not loaded.has_proba:
        raise NoProbabilities(
            f"{model_name} v{entry.number} ({entry.estimator or 'this estimator'}) does not estimate probabilities."
        )
    answers = None
    if prediction_log_streams(len(matrix)):
        species, probabilities, ids, answers = _predict_streamed(
            entry, loaded, matrix, endpoint, with_probabilities, started, rows_answer
        )
    else:
        species, probabilities = loaded.predict_with_proba(matrix, with_proba=with_probabilities)
        latency_ms = (time.perf_counter() - started) * 1000.0
        challenger_version_id, challenger_species = _shadow_answers(entry, matrix)
        ids = prediction_log(
            model_id=entry.model_id,
            version_id=entry.version_id,
            matrix=matrix,
            species_ids=species,
            probabilities=probabilities,
            latency_ms=latency_ms,
            endpoint=endpoint,
            challenger_version_id=challenger_version_id,
            challenger_species_ids=challenger_species,
        )
        if rows_answer is not None:
            answers = rows_answer(ids, species, probabilities)
    metrics.predictions_record(model_name=entry.model_name, version_number=entry.number, species_ids=species)
    return PredictionOutcome(
        model_name=entry.model_name,
        version_id=entry.version_id,
        version_number=entry.number,
        species_ids=species,
        probabilities=probabilities,
        prediction_ids=ids,
        answers=answers,
    )


def _predict_streamed(
    entry: ServingEntry,
    loaded: LoadedModel,
    matrix: np.ndarray,
    endpoint: str,
    with_probabilities: bool,
    started: float,
    rows_answer: RowsAnswer | None,
) -> tuple[np.ndarray, np.ndarray | None, list[int], list | None]:
    """A batch predicted block by block while PostgreSQL stores the blocks before it: species,
    probabilities, the logged ids and what ``rows_answer`` made of the rows. Each row's latency
    is its block's (from the request's start to the block's answers). A block's answer is
    built once its rows are sent, while PostgreSQL stores them."""
    species_parts: list[np.ndarray] = []
    probability_parts: list[np.ndarray] = []
    answers: list | None = [] if rows_answer is not None else None
    shadow = entry.challenger is not None  # a challenger that fails is skipped from then on
    ids = prediction_ids_reserve(count=len(matrix))

    def blocks():
        nonlocal shadow
        for start in range(0, len(matrix), STREAM_BLOCK_ROWS):
            rows = matrix[start : start + STREAM_BLOCK_ROWS]
            species, probabilities = loaded.predict_with_proba(rows, with_proba=with_probabilities)
            latency_ms = (time.perf_counter() - started) * 1000.0
            challenger_version_id, challenger_species = _shadow_answers(entry, rows) if shadow else (None, None)
            shadow = challenger_species is not None
            species_parts.append(species)
            if probabilities is not None:
                probability_parts.append(probabilities)
            yield LogBlock(species, probabilities, latency_ms, challenger_version_id, challenger_species)
            if answers is not None:
                answers.extend(rows_answer(ids[start : start + len(species)], species, probabilities))

    prediction_log_stream(
        model_id=entry.model_id,
        version_id=entry.version_id,
        matrix=matrix,
        endpoint=endpoint,
        blocks=blocks(),
        ids=ids,
    )
    probabilities = np.concatenate(probability_parts) if probability_parts else None
    return np.concatenate(species_parts), probabilities, ids, answers


# Version id → the stat signatures of its files when they were last found damaged: a file is
# hashed again only once it changed, not on every request to a broken version.
_damaged_signatures: dict[int, tuple] = {}


def _files_restored(entry: ServingEntry) -> bool:
    """Whether a version broken by its files (damaged, missing, unreadable) has them back intact."""
    if not entry.broken_reason.startswith("artifact file "):
        return False  # unusable for another reason (not a model, wrong features): not a file fault
    files = [(entry.artifact_path, entry.sha256)]
    if entry.onnx_path:
        files.append((entry.onnx_path, entry.onnx_sha256))
    signature = tuple(_signature(relative) for relative, _ in files)
    if _damaged_signatures.get(entry.version_id) == signature:
        return False
    try:
        for relative, sha256 in files:
            artifacts.read_verified(relative, sha256)
    except artifacts.ArtifactError:
        _damaged_signatures[entry.version_id] = signature
        return False
    _damaged_signatures.pop(entry.version_id, None)
    return model_version_restore(version_id=entry.version_id, reason=entry.broken_reason)


def _signature(relative: str) -> tuple | None:
    try:
        stat = os.stat(artifacts.absolute(relative))
    except (OSError, artifacts.ArtifactError):
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _shadow_answers(entry: ServingEntry, matrix: np.ndarray) -> tuple[int | None, np.ndarray | None]:
    """The challenger's species for the same rows, or (None, None) when there is none or it fails.

    Shadow traffic never changes the answer: a challenger that cannot load or predict is
    logged and skipped, and the client still gets the champion's answer.
    """
    challenger = entry.challenger
    if challenger is None:
        return None, None
    try:
        return challenger.version_id, load_entry(challenger).predict(matrix)
    except Exception as exc:
        logger.warning("challenger %s v%s did not answer in shadow: %s", challenger.model_name, challenger.number, exc)
        return None, None


def _load_entry(entry: ServingEntry) -> LoadedModel:
    if entry.broken_reason:
        if not _files_restored(entry):
            raise ModelBroken(f"{entry.model_name} v{entry.number} cannot serve: {entry.broken_reason}.")
        entry = dataclasses.replace(entry, broken_reason="")
    try:
        return load_entry(entry)
    except (artifacts.ArtifactError, ModelUnusable) as exc:
        model_version_mark_broken(version_id=entry.version_id, reason=str(exc))
        raise ModelBroken(f"{entry.model_name} v{entry.number} cannot serve: {exc}.") from None
