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

from core.encoding import FIELDS, RULES, SPECIES, SPECIES_NAMES

from .models import PROBABILITY_COLUMNS, Prediction

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
    "species_id",
    "true_species_id",
    "latency_ms",
    *FIELDS,
    *PROBABILITY_COLUMNS,
)
_INTEGRAL = tuple(RULES[field].integral for field in FIELDS)
_FIRST_INPUT = _COLUMNS.index(FIELDS[0])
_FIRST_PROBABILITY = _COLUMNS.index(PROBABILITY_COLUMNS[0])


def _inputs(row: tuple) -> dict[str, float | int]:
    """The row's inputs as the earlier format wrote them: codes as ints, measurements as floats."""
    values = row[_FIRST_INPUT:_FIRST_PROBABILITY]
    return {field: int(v) if integral else float(v) for field, v, integral in zip(FIELDS, values, _INTEGRAL)}


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
    for row in values:
        created_at, model, species_id = row[1], row[2], row[5]
        line = {
            "timestamp": created_at.isoformat(),
            "input": _inputs(row),
            "result": {"model": model, "species_id": species_id, "species_name": SPECIES[species_id]},
        }
        stream.write(json.dumps(line) + "\n")
        count += 1
    return count


def _write_csv(stream: TextIO, values) -> int:
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in values:
        pk, created_at, model, version, endpoint, species_id, truth, latency = row[:_FIRST_INPUT]
        proba = row[_FIRST_PROBABILITY:]
        writer.writerow(
            [
                pk,
                created_at.isoformat(),
                model,
                version,
                endpoint,
                *_inputs(row).values(),
                species_id,
                SPECIES[species_id],
                *("" if value is None else value for value in proba),
                "" if truth is None else truth,
                round(latency, 3),
            ]
        )
        count += 1
    return count
