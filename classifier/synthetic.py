"""Synthetic prediction-log rows, to see how the service behaves with a big log.

``prediction_log_fill`` tops the log up to a given number of rows, made of real answers:
penguins drawn from the dataset (``PENGUIN_DATA_PATH``), classified by each serving model's
active version, spread over the past days in id order. On PostgreSQL the rows go in with
``COPY`` in chunks (about a million rows in well under a minute); elsewhere with large
``bulk_create`` batches.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from core.encoding import FIELDS, RULES, probabilities_rounded

from . import selectors
from .models import PROBABILITY_COLUMNS, Prediction
from .onnx_runtime import parity_features
from .serving import load_entry

CHUNK_ROWS = 100_000
COPY_COLUMNS = (
    "model_id",
    "version_id",
    "created_at",
    "endpoint",
    *FIELDS,
    "species_id",
    *PROBABILITY_COLUMNS,
    "latency_ms",
    "true_species_id",
    "feedback_at",
)

# One row's inputs as COPY text, tab-separated in FIELDS order: codes as whole numbers,
# measurements as Python's shortest float repr (exactly the float that was parsed).
_INPUT_TEMPLATE = "\t".join("%d" if RULES[field].integral else "%r" for field in FIELDS)
_PROBABILITY_TEMPLATE = "\t".join(["%r"] * len(PROBABILITY_COLUMNS))
NO_PROBABILITIES = "\t".join([r"\N"] * len(PROBABILITY_COLUMNS))


def inputs_text(matrix: np.ndarray) -> list[str]:
    """Each row's seven input columns as COPY text."""
    template = _INPUT_TEMPLATE
    return [template % tuple(row) for row in matrix.tolist()]


def probabilities_text(probabilities: np.ndarray) -> list[str]:
    """Each row's species probabilities (species-id order) as COPY text."""
    template = _PROBABILITY_TEMPLATE
    return [template % tuple(row) for row in probabilities.tolist()]


class FillError(Exception):
    """The log cannot be filled (no serving model, no dataset); the message says why."""


@dataclass
class FillReport:
    before: int
    added: int
    after: int
    method: str


@dataclass
class _Answers:
    """Every dataset penguin's answer from one version, as log fields."""

    model_id: int
    version_id: int
    species: list[int]
    probabilities: list[str]  # COPY text of the probability columns (NULLs when the model gives none)
    probability_rows: list[tuple]  # the same as numbers, for bulk_create


def _answers() -> tuple[np.ndarray, list[_Answers]]:
    matrix = parity_features()
    answers = []
    for entry in selectors.registry_active_entries().values():
        if entry.broken_reason:
            continue
        model = load_entry(entry)
        species, probabilities = model.predict_with_proba(matrix, with_proba=model.has_proba)
        if probabilities is None:
            no_numbers = (None,) * len(PROBABILITY_COLUMNS)
            proba_text, proba_rows = [NO_PROBABILITIES] * len(matrix), [no_numbers] * len(matrix)
        else:
            probabilities = probabilities_rounded(probabilities)  # as the log keeps an answer's
            proba_text, proba_rows = probabilities_text(probabilities), [tuple(row) for row in probabilities.tolist()]
        answers.append(_Answers(entry.model_id, entry.version_id, species.tolist(), proba_text, proba_rows))
    if not answers:
        raise FillError("No model can serve: train one first (manage.py train_model --all).")
    return matrix, answers


def prediction_log_fill(
    *,
    total: int,
    clear: bool = False,
    days: float = 30.0,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> FillReport:
    """Add synthetic rows until the log holds ``total`` rows (``clear`` empties it first)."""
    if clear:
        prediction_log_clear()
    before = Prediction.objects.count()
    missing = max(0, total - before)
    if not missing:
        return FillReport(before, 0, before, "none")
    matrix, answers = _answers()
    inputs = inputs_text(matrix)
    rng = np.random.default_rng(seed)
    now = timezone.now()
    # Ascending times, so that ids and created_at grow together as in a real log.
    offsets = np.sort(rng.uniform(0, days * 86400.0, size=missing))[::-1]
    postgres = connection.vendor == "postgresql"
    added = 0
    for start in range(0, missing, CHUNK_ROWS):
        count = min(CHUNK_ROWS, missing - start)
        chunk = _Chunk(rng, count, len(inputs), len(answers), offsets[start : start + count], now)
        if postgres:
            _copy_chunk(chunk, inputs, answers)
        else:
            _bulk_chunk(chunk, matrix, answers)
        added += count
        if progress is not None:
            progress(added)
    if postgres:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE classifier_prediction")
    return FillReport(before, added, before + added, "COPY" if postgres else "bulk_create")


def prediction_log_clear() -> None:
    """Remove every logged prediction and its feedback history (TRUNCATE on PostgreSQL)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if connection.in_atomic_block:  # rows written earlier in this transaction: check them first
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            # The feedback history goes with the predictions it belongs to.
            cursor.execute("TRUNCATE classifier_prediction, classifier_predictionfeedback")
    else:
        Prediction.objects.all().delete()


class _Chunk:
    def __init__(self, rng, count: int, n_inputs: int, n_answers: int, offsets: np.ndarray, now) -> None:
        self.count = count
        self.sample = rng.integers(0, n_inputs, size=count)
        self.answer = rng.integers(0, n_answers, size=count)
        self.endpoint = np.where(rng.random(count) < 0.8, "classify", "predict")
        self.latency = rng.lognormal(mean=0.7, sigma=0.4, size=count).round(3)
        self.feedback = rng.random(count) < 0.02
        self.times = [now - timedelta(seconds=float(offset)) for offset in offsets]


def _copy_chunk(chunk: _Chunk, inputs: list[str], answers: list[_Answers]) -> None:
    buffer = io.StringIO()
    write = buffer.write
    for i in range(chunk.count):
        answer = answers[chunk.answer[i]]
        sample = chunk.sample[i]
        species = answer.species[sample]
        proba = answer.probabilities[sample]
        when = chunk.times[i].isoformat()
        feedback = (str(species), when) if chunk.feedback[i] else (r"\N", r"\N")
        write(
            f"{answer.model_id}\t{answer.version_id}\t{when}\t{chunk.endpoint[i]}\t{inputs[sample]}\t"
            f"{species}\t{proba}\t{chunk.latency[i]}\t{feedback[0]}\t{feedback[1]}\n"
        )
    buffer.seek(0)
    with transaction.atomic(), connection.cursor() as cursor:
        # COPY is psycopg's own API; Django's cursor wrapper hands it through.
        cursor.copy_expert(f"COPY classifier_prediction ({', '.join(COPY_COLUMNS)}) FROM STDIN", buffer)


def _bulk_chunk(chunk: _Chunk, matrix: np.ndarray, answers: list[_Answers]) -> None:
    inputs = [dict(zip(FIELDS, row)) for row in matrix.tolist()]
    rows = []
    for i in range(chunk.count):
        answer = answers[chunk.answer[i]]
        sample = chunk.sample[i]
        species = answer.species[sample]
        proba = answer.probability_rows[sample]
        rows.append(
            Prediction(
                model_id=answer.model_id,
                version_id=answer.version_id,
                created_at=chunk.times[i],
                endpoint=str(chunk.endpoint[i]),
                **inputs[sample],
                species_id=species,
                **dict(zip(PROBABILITY_COLUMNS, proba)),
                latency_ms=float(chunk.latency[i]),
                true_species_id=species if chunk.feedback[i] else None,
                feedback_at=chunk.times[i] if chunk.feedback[i] else None,
            )
        )
    Prediction.objects.bulk_create(rows, batch_size=5_000)
