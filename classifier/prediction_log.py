"""The prediction log's writers: one row as one prepared INSERT, many rows at once.

``services.predictions.prediction_log`` picks the writer. A 10,000-row batch through
``bulk_create`` spends about two seconds building model instances and a 20,000-parameter
INSERT. Here the rows become tab-separated text with string templates (one pass over plain
lists, no per-row ORM objects) and go to PostgreSQL in one ``COPY``; the ids are reserved
from the table's sequence first, in one query, so every row's id is known without reading
anything back.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections

from core.encoding import FIELDS, RULES

from .models import PROBABILITY_COLUMNS, Prediction

COPY_COLUMNS = (
    "id",
    "model_id",
    "version_id",
    "created_at",
    "endpoint",
    *FIELDS,
    "species_id",
    *PROBABILITY_COLUMNS,
    "latency_ms",
    "challenger_version_id",
    "challenger_species_id",
)
# One row's inputs as COPY text, tab-separated in FIELDS order: codes as whole numbers,
# measurements as Python's shortest float repr (exactly the float that was parsed).
_INPUT_TEMPLATE = "\t".join("%d" if RULES[field].integral else "%r" for field in FIELDS)
_PROBABILITY_TEMPLATE = "\t".join(["%r"] * len(PROBABILITY_COLUMNS))
NO_PROBABILITIES = "\t".join([r"\N"] * len(PROBABILITY_COLUMNS))


def inputs_text(matrix: np.ndarray) -> list[str]:
    """Each parsed row's seven input columns as COPY text."""
    template = _INPUT_TEMPLATE
    return [template % tuple(row) for row in matrix.tolist()]


def probabilities_text(probabilities: np.ndarray) -> list[str]:
    """Each row's species probabilities (6 decimals, species-id order) as COPY text."""
    template = _PROBABILITY_TEMPLATE
    return [template % tuple(row) for row in probabilities.round(6).tolist()]


_sequence: list[str] = []  # the id sequence's name, looked up once per process


def reserve_ids(count: int) -> list[int]:
    """``count`` fresh ids from the prediction table's sequence (PostgreSQL)."""
    with connection.cursor() as cursor:
        if not _sequence:
            # Looked up once: inside the query below it would be evaluated for every row (5× slower).
            cursor.execute(
                "SELECT pg_get_serial_sequence(%s, %s)", [Prediction._meta.db_table, Prediction._meta.pk.column]
            )
            _sequence.append(cursor.fetchone()[0])
        cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [_sequence[0], count])
        return [row[0] for row in cursor.fetchall()]


def prediction_copy(
    *,
    model_id: int,
    version_id: int,
    created_at: datetime,
    endpoint: str,
    inputs: Sequence[str],
    species: Sequence[int],
    probabilities: Sequence[str] | None,
    latency_ms: float,
    challenger_version_id: int | None = None,
    challenger_species: Sequence[int] | None = None,
) -> list[int]:
    """Write the rows with one COPY (PostgreSQL only); returns their ids in row order.

    Every value is a number or a fixed name, so no value needs COPY's escaping (no tab,
    newline or backslash can occur inside one). ``inputs`` and ``probabilities`` come from
    ``inputs_text`` and ``probabilities_text``.
    """
    ids = reserve_ids(len(inputs))
    shared = f"\t{model_id}\t{version_id}\t{created_at.isoformat()}\t{endpoint}\t"
    tail = f"\t{float(latency_ms)!r}\t"
    proba = probabilities if probabilities is not None else [NO_PROBABILITIES] * len(inputs)
    if challenger_species is None:
        shadow = ["\\N\t\\N"] * len(inputs)  # NULL, tab, NULL
    else:
        shadow = [f"{challenger_version_id}\t{code}" for code in challenger_species]
    text = "".join(
        f"{row_id}{shared}{row_inputs}\t{code}\t{row_proba}{tail}{row_shadow}\n"
        for row_id, row_inputs, code, row_proba, row_shadow in zip(ids, inputs, species, proba, shadow)
    )
    sql = f"COPY {Prediction._meta.db_table} ({', '.join(COPY_COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor, connection.wrap_database_errors:
        # psycopg2's COPY API; Django's cursor wrapper lists it with the queries (DEBUG, tests)
        # but does not translate its errors: a lost connection must be Django's DatabaseError
        # (a 503 with Retry-After, and the connection replaced) like any other query's.
        cursor.copy_expert(sql, io.StringIO(text))
    return ids


def inputs_rows(matrix: np.ndarray) -> list[list[float | int]]:
    """Every row's values as ``row_to_input`` gives them (codes as ints), from one tolist()."""
    integral = [position for position, name in enumerate(FIELDS) if RULES[name].integral]
    rows = matrix.tolist()
    for row in rows:
        for position in integral:
            row[position] = int(row[position])
    return rows


# The columns a logged answer fills, in the order prediction_insert_one takes them.
LOG_FIELDS = (
    "model",
    "version",
    "created_at",
    "endpoint",
    *FIELDS,
    "species_id",
    *PROBABILITY_COLUMNS,
    "latency_ms",
    "challenger_version",
    "challenger_species_id",
)
NO_PROBABILITY_VALUES = (None,) * len(PROBABILITY_COLUMNS)


@functools.cache
def _prediction_insert_statement(vendor: str, sync_commit: bool) -> tuple[str, tuple | None, bool]:
    """The INSERT for one Prediction row on this database, built once per process, with the
    fields whose values need the ORM's preparation (None on PostgreSQL: psycopg2 takes the
    ints, floats, strings and aware datetime as they are, and skipping 21 get_db_prep_save
    calls is a tenth of the row's CPU).

    With PENGUIN_LOG_SYNC_COMMIT off, PostgreSQL runs it with ``synchronous_commit`` off:
    both statements go in one round trip and form one implicit transaction, so the setting
    applies to this INSERT only.
    """
    meta = Prediction._meta
    fields = tuple(meta.get_field(name) for name in LOG_FIELDS)
    quote = connection.ops.quote_name
    returning = connection.features.can_return_columns_from_insert
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    if returning:
        sql += f" RETURNING {quote(meta.pk.column)}"
    if vendor == "postgresql" and not sync_commit:
        sql = "SET LOCAL synchronous_commit TO OFF; " + sql
    return sql, None if vendor == "postgresql" else fields, returning


def prediction_insert_one(values: tuple) -> int:
    """Insert one row (values in LOG_FIELDS order, as Python ints, floats, strings, an aware
    datetime or None) and return its id."""
    db = connections[DEFAULT_DB_ALIAS]  # looked up once: each access through the proxy costs a lookup
    sql, fields, returning = _prediction_insert_statement(db.vendor, settings.PENGUIN_LOG_SYNC_COMMIT)
    params = values if fields is None else [field.get_db_prep_save(value, db) for field, value in zip(fields, values)]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:
            return cursor.fetchone()[0]
        return db.ops.last_insert_id(cursor, Prediction._meta.db_table, Prediction._meta.pk.column)
