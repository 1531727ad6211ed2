"""Prediction-log writes: the rows of an answer, and the true species that comes back (feedback)."""

from __future__ import annotations

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone

from core.encoding import FIELDS, SPECIES, SPECIES_IDS, SPECIES_NAMES, row_to_input

from .. import prediction_log as writers
from ..models import Prediction


def prediction_log(
    *,
    model_id: int,
    version_id: int,
    matrix: np.ndarray,
    species_ids: np.ndarray,
    probabilities: np.ndarray | None,
    latency_ms: float,
    endpoint: str,
) -> list[int]:
    """Write one Prediction row per input row: one COPY for a batch on PostgreSQL
    (``bulk_create`` elsewhere).

    A single answer is one prepared ``INSERT … RETURNING id``: the ORM's save() costs three
    times the CPU for the same statement, a quarter of a classify request.
    """
    now = timezone.now()
    if len(matrix) == 1:
        proba = probabilities[0].round(6).tolist() if probabilities is not None else None
        return [
            writers.prediction_insert_one(
                (
                    model_id,
                    version_id,
                    now,
                    endpoint,
                    row_to_input(matrix[0]),
                    int(species_ids[0]),
                    dict(zip(SPECIES_NAMES, proba)) if proba is not None else None,
                    latency_ms,
                )
            )
        ]
    species_list = species_ids.tolist()
    if connection.vendor == "postgresql":
        return writers.prediction_copy(
            model_id=model_id,
            version_id=version_id,
            created_at=now,
            endpoint=endpoint,
            inputs=writers.inputs_json(matrix),
            species=species_list,
            probabilities=writers.probabilities_json(probabilities) if probabilities is not None else None,
            latency_ms=latency_ms,
        )
    proba_list = probabilities.round(6).tolist() if probabilities is not None else [None] * len(species_list)
    rows = [
        Prediction(
            model_id=model_id,
            version_id=version_id,
            created_at=now,
            endpoint=endpoint,
            inputs=dict(zip(FIELDS, values)),
            species_id=species,
            probabilities=dict(zip(SPECIES_NAMES, proba)) if proba is not None else None,
            latency_ms=latency_ms,
        )
        for values, species, proba in zip(writers.inputs_rows(matrix), species_list, proba_list)
    ]
    created = Prediction.objects.bulk_create(rows)
    return [row.pk for row in created]


def prediction_feedback_record(
    *, prediction: Prediction, species_id: int, user: AbstractBaseUser | None = None
) -> Prediction:
    """Record the true species of a logged prediction, with who and when.

    Sending feedback again replaces the earlier answer (a correction).
    """
    if species_id not in SPECIES:
        raise ValueError(f"species_id must be one of {list(SPECIES_IDS)}; got {species_id!r}")
    prediction.true_species_id = species_id
    prediction.feedback_at = timezone.now()
    prediction.feedback_by = user if user is not None and user.is_authenticated else None
    prediction.save(update_fields=["true_species_id", "feedback_at", "feedback_by"])
    return prediction
