"""Prediction-log writes: the rows of an answer, and the true species that comes back (feedback)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from core.encoding import FIELDS, SPECIES, SPECIES_IDS, probabilities_rounded, row_to_input

from .. import prediction_log as writers
from ..models import PROBABILITY_COLUMNS, Prediction, PredictionFeedback


def prediction_log(
    *,
    model_id: int,
    version_id: int,
    matrix: np.ndarray,
    species_ids: np.ndarray,
    probabilities: np.ndarray | None,
    latency_ms: float,
    endpoint: str,
    challenger_version_id: int | None = None,
    challenger_species_ids: np.ndarray | None = None,
) -> list[int]:
    """Write one Prediction row per input row, with the challenger's answer when one is given:
    one COPY for a batch on PostgreSQL (``bulk_create`` elsewhere). Probabilities are kept to
    6 decimals summing to 1, as the API's answer gives them.

    A single answer is one prepared ``INSERT … RETURNING id``: the ORM's save() costs three
    times the CPU for the same statement, a quarter of a classify request.
    """
    now = timezone.now()
    if probabilities is not None:
        probabilities = probabilities_rounded(probabilities)  # the log keeps what the answer says
    if len(matrix) == 1:
        proba = probabilities[0].tolist() if probabilities is not None else writers.NO_PROBABILITY_VALUES
        inputs = row_to_input(matrix[0])
        return [
            writers.prediction_insert_one(
                (
                    model_id,
                    version_id,
                    now,
                    endpoint,
                    *(inputs[field] for field in FIELDS),
                    int(species_ids[0]),
                    *proba,
                    latency_ms,
                    challenger_version_id,
                    int(challenger_species_ids[0]) if challenger_species_ids is not None else None,
                )
            )
        ]
    if connection.vendor == "postgresql":
        block = writers.LogBlock(species_ids, probabilities, latency_ms, challenger_version_id, challenger_species_ids)
        return writers.prediction_copy(
            model_id=model_id, version_id=version_id, created_at=now, endpoint=endpoint, matrix=matrix, blocks=[block]
        )
    species_list = species_ids.tolist()
    challenger_list = challenger_species_ids.tolist() if challenger_species_ids is not None else None
    count = len(species_list)
    proba_list = probabilities.tolist() if probabilities is not None else [writers.NO_PROBABILITY_VALUES] * count
    rows = [
        Prediction(
            model_id=model_id,
            version_id=version_id,
            created_at=now,
            endpoint=endpoint,
            **dict(zip(FIELDS, values)),
            species_id=species,
            **dict(zip(PROBABILITY_COLUMNS, proba)),
            latency_ms=latency_ms,
            challenger_version_id=challenger_version_id if shadow is not None else None,
            challenger_species_id=shadow,
        )
        for values, species, proba, shadow in zip(
            writers.inputs_rows(matrix), species_list, proba_list, challenger_list or [None] * len(species_list)
        )
    ]
    created = Prediction.objects.bulk_create(rows)
    return [row.pk for row in created]


def prediction_log_streams(rows: int) -> bool:
    """Whether a batch of ``rows`` is answered and logged block by block (``prediction_log_stream``):
    on PostgreSQL, from two blocks up."""
    return rows >= 2 * writers.STREAM_BLOCK_ROWS and connection.vendor == "postgresql"


def prediction_ids_reserve(*, count: int) -> list[int]:
    """Ids for ``count`` rows that ``prediction_log_stream`` will write (PostgreSQL): known before
    the rows are, so that each block's answer can name its rows while the COPY runs."""
    return writers.reserve_ids(count)


def prediction_log_stream(
    *,
    model_id: int,
    version_id: int,
    matrix: np.ndarray,
    endpoint: str,
    blocks: Iterable[writers.LogBlock],
    ids: list[int] | None = None,
) -> list[int]:
    """``prediction_log`` for a batch whose answers come block by block (consecutive rows, in
    order): PostgreSQL stores each block's rows while the next block is computed, in one COPY
    and one transaction. The rows are written when this returns, with ``ids`` when given
    (``prediction_ids_reserve``); if a block cannot be given, nothing is written and its
    exception is raised.
    """
    now = timezone.now()
    rounded = (
        dataclasses.replace(block, probabilities=probabilities_rounded(block.probabilities))
        if block.probabilities is not None
        else block
        for block in blocks
    )
    return writers.prediction_copy(
        model_id=model_id,
        version_id=version_id,
        created_at=now,
        endpoint=endpoint,
        matrix=matrix,
        blocks=rounded,
        ids=ids,
    )


def prediction_feedback_record(
    *, prediction: Prediction, species_id: int, user: AbstractBaseUser | None = None
) -> Prediction:
    """Record the true species of a logged prediction, with who and when.

    Sending feedback again replaces the current answer (a correction); every answer, the
    replaced ones included, stays in the prediction's ``feedback_history``.
    """
    if species_id not in SPECIES:
        raise ValueError(f"species_id must be one of {list(SPECIES_IDS)}; got {species_id!r}")
    prediction.true_species_id = species_id
    prediction.feedback_at = timezone.now()
    prediction.feedback_by = user if user is not None and user.is_authenticated else None
    with transaction.atomic():
        prediction.save(update_fields=["true_species_id", "feedback_at", "feedback_by"])
        PredictionFeedback.objects.create(
            prediction=prediction,
            true_species_id=species_id,
            recorded_at=prediction.feedback_at,
            recorded_by=prediction.feedback_by,
        )
    return prediction
