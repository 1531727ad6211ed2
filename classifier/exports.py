"""Writing the prediction log out: the earlier service's JSON lines, or CSV.

JSON lines keep the earlier format, one object per prediction, oldest first::

    {"timestamp": "2025-05-01T12:00:00.123456+00:00",
     "input": {"island": 2, "bill_length_mm": 46.1, ..., "year": 2007},
     "result": {"model": "knn", "species_id": 3, "species_name": "Gentoo"}}

where ``result`` is exactly what ``POST /classify/<name>`` answered. CSV has one column per
input field plus the version, probabilities and feedback. Rows are streamed from the
database in chunks (``.iterator()``), so a log of millions of rows is never held in memory.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from typing import TextIO

from core.encoding import FIELDS, SPECIES, SPECIES_NAMES

from .models import Prediction

FORMATS = ("jsonl", "csv")
CHUNK_SIZE = 2000
CSV_COLUMNS = [
    "id",
    "timestamp",
    "model",
    "version",
    "endpoint",
    *FIELDS,
    "species_id",
    "species_name",
    *(f"probability_{name}" for name in SPECIES_NAMES),
    "true_species_id",
    "latency_ms",
]

_COLUMNS = (
    "id",
    "created_at",
    "model__name",
    "version__number",
    "endpoint",
    "inputs",
    "species_id",
    "probabilities",
    "true_species_id",
    "latency_ms",
)


def prediction_export(
    *, stream: TextIO, fmt: str = "jsonl", since: datetime | None = None, model_name: str | None = None
) -> int:
    """Write the matching predictions to ``stream``, oldest first; returns how many."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    rows = Prediction.objects.order_by("id")
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if model_name is not None:
        rows = rows.filter(model__name=model_name)
    values = rows.values_list(*_COLUMNS).iterator(chunk_size=CHUNK_SIZE)
    return _write_csv(stream, values) if fmt == "csv" else _write_jsonl(stream, values)


def _write_jsonl(stream: TextIO, values) -> int:
    count = 0
    for _id, created_at, model, _version, _endpoint, inputs, species_id, _proba, _truth, _latency in values:
        line = {
            "timestamp": created_at.isoformat(),
            "input": inputs,
            "result": {"model": model, "species_id": species_id, "species_name": SPECIES[species_id]},
        }
        stream.write(json.dumps(line) + "\n")
        count += 1
    return count


def _write_csv(stream: TextIO, values) -> int:
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for pk, created_at, model, version, endpoint, inputs, species_id, proba, truth, latency in values:
        writer.writerow(
            [
                pk,
                created_at.isoformat(),
                model,
                version,
                endpoint,
                *(inputs.get(field) for field in FIELDS),
                species_id,
                SPECIES[species_id],
                *((proba or {}).get(name, "") for name in SPECIES_NAMES),
                "" if truth is None else truth,
                round(latency, 3),
            ]
        )
        count += 1
    return count
