"""The prediction log's writers: one row as one prepared INSERT, many rows at once.

``services.predictions.prediction_log`` picks the writer. A 10,000-row batch through
``bulk_create`` spends about two seconds building model instances and a 20,000-parameter
INSERT. Here the rows become one numpy record array in PostgreSQL's binary COPY format (no
per-row Python objects, no number printed as text and parsed back) and go to PostgreSQL in
one ``COPY``; the ids are reserved from the table's sequence first, in one query, so every
row's id is known without reading anything back. The COPY takes its rows block by block
(``LogBlock``) as the caller computes them: PostgreSQL stores a block's rows while the next
block is predicted, and a COPY abandoned midway writes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

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

# PostgreSQL's binary COPY format (the COPY page of its manual, "Binary Format"): a signature,
# flags and header-extension length, then per row a 16-bit field count and each field as a
# 32-bit length (-1 for NULL) followed by its bytes in network order; a 16-bit -1 ends it.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_BIGINT, _SMALLINT, _DOUBLE = ">i8", ">i2", ">f8"
_TIMESTAMP_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # timestamptz: microseconds since then
# The inputs' column types in FIELDS order: codes are smallints, measurements doubles.
_INPUT_TYPES = tuple(_SMALLINT if RULES[field].integral else _DOUBLE for field in FIELDS)


def binary_rows(columns: list[tuple[str | None, object]], count: int) -> bytes:
    """``count`` rows in PostgreSQL's binary COPY format (without its header and trailer).

    Each column is ``(type, values)``: a big-endian numpy type (``">i8"``, ``">f8"``,
    ``"S7"`` for text of 7 bytes) and either ``count`` values or one value for every row;
    ``(None, None)`` is NULL in every row. numpy converts each value to its column's type
    exactly (the codes are whole numbers, the measurements the floats that were parsed).
    """
    layout = [("fields", ">i2")]
    for index, (kind, _) in enumerate(columns):
        layout.append((f"length{index}", ">i4"))
        if kind is not None:
            layout.append((f"value{index}", kind))
    rows = np.empty(count, dtype=np.dtype(layout))
    rows["fields"] = len(columns)
    for index, (kind, values) in enumerate(columns):
        if kind is None:
            rows[f"length{index}"] = -1
        else:
            rows[f"length{index}"] = np.dtype(kind).itemsize
            rows[f"value{index}"] = values
    return rows.tobytes()


def _microseconds(moment: datetime) -> int:
    delta = moment - _TIMESTAMP_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_sequence: list[str] = []  # the id sequence's name, looked up once per process


# ``count`` values from the sequence in one statement. When no other session took one meanwhile
# (the usual case) they are consecutive and only the first and the last come back (PostgreSQL
# still gathers the array, but does not send it): fetching 10,000 rows of one number cost about
# as much again as the sequence's own work.
_RESERVE_SQL = (
    "SELECT min(taken), max(taken), "
    "CASE WHEN max(taken) - min(taken) + 1 = count(*) THEN NULL ELSE array_agg(taken ORDER BY n) END "
    "FROM (SELECT n, nextval(%s::regclass) AS taken FROM generate_series(1, %s) AS n) AS reserved"
)


def reserve_ids(count: int) -> list[int]:
    """``count`` fresh ids from the prediction table's sequence (PostgreSQL), increasing."""
    if count <= 0:
        return []
    with connection.cursor() as cursor:
        if not _sequence:
            # Looked up once: inside the query below it would be evaluated for every row (5× slower).
            cursor.execute(
                "SELECT pg_get_serial_sequence(%s, %s)", [Prediction._meta.db_table, Prediction._meta.pk.column]
            )
            _sequence.append(cursor.fetchone()[0])
        cursor.execute(_RESERVE_SQL, [_sequence[0], count])
        first, last, scattered = cursor.fetchone()
    return list(range(first, last + 1)) if scattered is None else scattered


COPY_SQL = f"COPY {Prediction._meta.db_table} ({', '.join(COPY_COLUMNS)}) FROM STDIN WITH (FORMAT binary)"

# A batch is answered and written in blocks of this many rows (``prediction_log_stream``):
# PostgreSQL stores one block's rows while the next block is predicted.
STREAM_BLOCK_ROWS = 1000


@dataclass(frozen=True)
class LogBlock:
    """The answers for consecutive rows of a batch, as they are logged."""

    species: np.ndarray
    probabilities: np.ndarray | None
    latency_ms: float
    challenger_version_id: int | None = None
    challenger_species: np.ndarray | None = None


def prediction_copy(
    *,
    model_id: int,
    version_id: int,
    created_at: datetime,
    endpoint: str,
    matrix: np.ndarray,
    blocks: Iterable[LogBlock],
    ids: list[int] | None = None,
) -> list[int]:
    """Write one row per row of ``matrix`` with one binary COPY in one transaction (PostgreSQL
    only); returns their ids in row order (``ids`` when given: reserved with ``reserve_ids``).
    Every value is stored as given.

    ``blocks`` give the answers for consecutive rows, in order, covering every row. Each block
    is sent as soon as it is given, so the next one can be computed while PostgreSQL stores
    its rows. If one cannot be given (the iteration raises), the COPY is abandoned, nothing is
    written, and that exception is raised as it was.
    """
    if ids is None:
        ids = reserve_ids(len(matrix))
    elif len(ids) != len(matrix):
        raise ValueError(f"{len(ids)} ids for {len(matrix)} rows")
    reader = _BlockReader(
        ids=ids,
        blocks=iter(blocks),
        matrix=matrix,
        model_id=model_id,
        version_id=version_id,
        created_at=created_at,
        endpoint=endpoint,
    )
    # One transaction (a savepoint inside an outer one): an abandoned COPY leaves nothing
    # behind, nor an outer transaction in error.
    with transaction.atomic(), connection.cursor() as cursor, connection.wrap_database_errors:
        try:
            # psycopg2's COPY API; Django's cursor wrapper lists it with the queries (DEBUG, tests)
            # but does not translate its errors: a lost connection must be Django's DatabaseError
            # (a 503 with Retry-After, and the connection replaced) like any other query's.
            cursor.copy_expert(COPY_SQL, reader, _READ_SIZE)
        except Exception:  # psycopg2 raises QueryCanceled whatever read() raised
            if reader.error is not None:  # the answers failed, not the database
                raise reader.error from None
            raise
    return ids


_READ_SIZE = 1 << 24  # psycopg2 asks for at most this much; a block is far less


class _BlockReader:
    """The COPY's data as psycopg2 reads it: the header and the first block's rows, then each
    next block's rows, then the trailer. Each read computes (through ``blocks``) one block."""

    def __init__(self, *, ids, blocks: Iterator[LogBlock], matrix: np.ndarray, **columns) -> None:
        self.ids, self.blocks, self.matrix, self.columns = ids, blocks, matrix, columns
        self.written = 0
        self.finished = False
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        # psycopg2 turns whatever read() raises (a BaseException too) into QueryCanceled, which
        # would read as the database failing: the cause is kept and raised in its place.
        try:
            return self._next_data()
        except BaseException as exc:
            self.error = exc
            raise

    def _next_data(self) -> bytes:
        if self.finished:
            return b""
        start = self.written
        block = next(self.blocks, None)
        stop = start if block is None else start + len(block.species)
        if stop > len(self.matrix) or (block is None and stop < len(self.matrix)):
            # Abandoned before the trailer: rows without answers are never written.
            raise ValueError(f"the blocks gave answers for {stop} rows, not {len(self.matrix)}")
        if block is None:
            self.finished = True
            return _COPY_TRAILER if start else _COPY_HEADER + _COPY_TRAILER
        payload = copy_payload(
            ids=self.ids[start:stop],
            matrix=self.matrix[start:stop],
            species=block.species,
            probabilities=block.probabilities,
            latency_ms=block.latency_ms,
            challenger_version_id=block.challenger_version_id,
            challenger_species=block.challenger_species,
            **self.columns,
        )
        self.written = stop
        return _COPY_HEADER + payload if start == 0 else payload


def copy_payload(
    *,
    ids,
    model_id: int,
    version_id: int,
    created_at: datetime,
    endpoint: str,
    matrix: np.ndarray,
    species: np.ndarray,
    probabilities: np.ndarray | None,
    latency_ms: float,
    challenger_version_id: int | None = None,
    challenger_species: np.ndarray | None = None,
) -> bytes:
    """The rows of ``COPY_SQL`` in PostgreSQL's binary format, one per row of ``matrix``, without
    the format's header and trailer (``copy_data`` adds them)."""
    name = endpoint.encode()
    columns = [
        (_BIGINT, ids),
        (_BIGINT, model_id),
        (_BIGINT, version_id),
        (_BIGINT, _microseconds(created_at)),
        (f"S{len(name)}", name),
        *((kind, matrix[:, position]) for position, kind in enumerate(_INPUT_TYPES)),
        (_SMALLINT, species),
        *(
            ((_DOUBLE, column) for column in probabilities.T)
            if probabilities is not None
            else [(None, None)] * len(PROBABILITY_COLUMNS)
        ),
        (_DOUBLE, latency_ms),
        *(
            [(_BIGINT, challenger_version_id), (_SMALLINT, challenger_species)]
            if challenger_species is not None
            else [(None, None), (None, None)]
        ),
    ]
    return binary_rows(columns, len(matrix))


def copy_data(*payloads: bytes) -> bytes:
    """Rows from ``copy_payload`` as one COPY's whole data: header, rows, trailer."""
    return _COPY_HEADER + b"".join(payloads) + _COPY_TRAILER


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
PREPARED_INSERT = "penguin_log_insert"  # the prepared statement's name on each PostgreSQL connection


@functools.cache
def _prediction_insert_statement(vendor: str, sync_commit: bool) -> tuple[str, tuple | None, bool, bool]:
    """The INSERT for one Prediction row on this database, built once per process, with the
    fields whose values need the ORM's preparation (None on PostgreSQL: psycopg2 takes the
    ints, floats, strings and aware datetime as they are, and skipping 21 get_db_prep_save
    calls is a tenth of the row's CPU).

    With PENGUIN_LOG_SYNC_COMMIT off, PostgreSQL runs it with ``synchronous_commit`` off:
    both statements go in one round trip and form one implicit transaction, so the setting
    applies to this INSERT only.

    On PostgreSQL the INSERT alone (synchronous commit on) may run as a prepared statement
    (``penguinsite/postgresql/base.py``; ``DATABASE_PREPARED_STATEMENTS``).
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
    prepared = vendor == "postgresql" and sync_commit and hasattr(connection, "fetchone_prepared")
    if vendor == "postgresql" and not sync_commit:
        sql = "SET LOCAL synchronous_commit TO OFF; " + sql
    return sql, None if vendor == "postgresql" else fields, returning, prepared


def prediction_insert_one(values: tuple) -> int:
    """Insert one row (values in LOG_FIELDS order, as Python ints, floats, strings, an aware
    datetime or None) and return its id."""
    db = connections[DEFAULT_DB_ALIAS]  # looked up once: each access through the proxy costs a lookup
    sql, fields, returning, prepared = _prediction_insert_statement(db.vendor, settings.PENGUIN_LOG_SYNC_COMMIT)
    params = values if fields is None else [field.get_db_prep_save(value, db) for field, value in zip(fields, values)]
    if prepared and db.prepared_allowed():
        return db.fetchone_prepared(PREPARED_INSERT, sql, params)[0]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:
            return cursor.fetchone()[0]
        return db.ops.last_insert_id(cursor, Prediction._meta.db_table, Prediction._meta.pk.column)
