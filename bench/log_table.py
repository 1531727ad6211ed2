"""The prediction log's table as shipped against its previous shape, on PostgreSQL.

Two databases on the same server, migrated by the project's own migrations:
- baseline: the log as migration 0007 left it: newest-first (descending) indexes on
  (model, id), (version, id), (species, id) and the challenger's rows, and foreign keys to
  the model, the version and the challenger's version, each checked row by row;
- shipped: the migrations' head: the same indexes ascending (read backwards for newest
  first), and instead of the keys the rule "a row names an existing version and its model
  (and an existing challenger's version)" checked once per statement (classifier/log_rule.py).

Both take the same rows in turns: a 10,000-row binary COPY as a logged batch writes it, and
single-row INSERTs as a classify writes them, each committed. Printed: wall time and
PostgreSQL's CPU (its session process, from /proc) per COPY and per INSERT, and the size of
the table's indexes at the end. The log already holds ``--preload`` batches of rows from five
models before the timing starts, since how an index grows shows only once it spans many pages.

A last table splits a committed single-row INSERT's PostgreSQL CPU on the shipped log: the
INSERT prepared once per session (as the service sends it) and as plain text, then copies of
the log holding the same rows without the rule's trigger, without the secondary indexes, without
any index, and a commit that does not wait for the WAL flush (the durable write's floor).

Usage: ``python bench/log_table.py [--preload 20] [--batches 10] [--inserts 1000]``;
``BENCH_DATABASE_URL`` picks the server (default postgres://postgres@127.0.0.1:5432/).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from monitoring import server_url  # noqa: E402

SHAPES = {"baseline": ("penguin_bench_log_before", "0007_champion_challenger"), "shipped": ("penguin_bench_log", None)}
MODELS = 5
ROWS = 10_000


def say(text: str = "") -> None:
    print(text, flush=True)


def admin(statement: str) -> None:
    import psycopg2

    connection = psycopg2.connect(f"{server_url()}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(statement)
    connection.close()


def database_prepare(name: str, target: str | None) -> None:
    admin(f'DROP DATABASE IF EXISTS "{name}"')
    admin(f'CREATE DATABASE "{name}"')
    command = [sys.executable, "manage.py", "migrate", "-v0"] + (["classifier", target] if target else [])
    environment = {**os.environ, "DATABASE_URL": f"{server_url()}/{name}", "PENGUIN_LOG_FORMAT": "text"}
    subprocess.run(command, cwd=REPO, env=environment, check=True)


class Log:
    """One database's log: a psycopg2 session, its server process, five models' versions."""

    def __init__(self, alias: str, name: str):
        import psycopg2

        from classifier.models import MLModel, ModelVersion

        self.versions = []
        for number in range(MODELS):
            model = MLModel.objects.using(alias).create(name=f"model{number}")
            version = ModelVersion.objects.using(alias).create(
                model=model, number=1, artifact_path=f"models/model{number}.joblib", sha256="0" * 64
            )
            self.versions.append((model.pk, version.pk))
        self.session = psycopg2.connect(f"{server_url()}/{name}")
        self.cursor = self.session.cursor()
        self.cursor.execute("SELECT pg_backend_pid()")
        self.pid = self.cursor.fetchone()[0]

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def timed(self, write) -> tuple[float, float]:
        cpu, started = self.cpu(), time.perf_counter()
        write()
        self.session.commit()
        return time.perf_counter() - started, self.cpu() - cpu

    def copy(self, payload: bytes) -> tuple[float, float]:
        from classifier.prediction_log import COPY_SQL

        return self.timed(lambda: self.cursor.copy_expert(COPY_SQL, io.BytesIO(payload)))

    def inserts(
        self, count: int, first_id: int, table: str = "classifier_prediction", prepared: bool = False
    ) -> tuple[float, float]:
        """``count`` single-row INSERTs, each committed; ``prepared``: as one statement prepared
        on this session (PREPARE once, EXECUTE per row), as the service sends its log's INSERT."""
        from classifier.prediction_log import COPY_COLUMNS

        sql = (
            f"INSERT INTO {table} ({', '.join(COPY_COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(COPY_COLUMNS))}) RETURNING id"
        )
        if prepared:
            name = f"bench_insert_{table}"
            self.cursor.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", [name])
            if self.cursor.fetchone() is None:
                numbered = ", ".join(f"${number}" for number in range(1, len(COPY_COLUMNS) + 1))
                self.cursor.execute(f"PREPARE {name} AS {sql.split(' VALUES ')[0]} VALUES ({numbered}) RETURNING id")
            sql = f"EXECUTE {name} ({', '.join(['%s'] * len(COPY_COLUMNS))})"

        def write():
            for number in range(count):
                model_id, version_id = self.versions[number % MODELS]
                row = (first_id + number, model_id, version_id, datetime.now(UTC), "classify", 1, 39.1, 18.7)
                row += (181.0, 3750.0, 2, 2007, 1 + number % 3, 0.9, 0.05, 0.05, 0.3, None, None)
                self.cursor.execute(sql, row)
                self.cursor.fetchone()
                self.session.commit()

        return self.timed(write)

    def index_megabytes(self) -> float:
        self.cursor.execute("SELECT pg_indexes_size('classifier_prediction')")
        return self.cursor.fetchone()[0] / 2**20


def batch_payload(number: int, first_id: int, versions: list[tuple[int, int]], rng) -> bytes:
    from classifier import prediction_log as writers

    model_id, version_id = versions[number % MODELS]
    matrix = np.column_stack(
        [
            rng.integers(0, 3, ROWS),
            rng.normal(44, 5, ROWS),
            rng.normal(17, 2, ROWS),
            rng.normal(200, 14, ROWS),
            rng.normal(4200, 800, ROWS),
            rng.integers(0, 2, ROWS),
            rng.integers(2007, 2010, ROWS),
        ]
    ).astype(float)
    probabilities = rng.dirichlet([1, 1, 1], ROWS)
    rows = writers.copy_payload(
        ids=np.arange(first_id, first_id + ROWS),
        model_id=model_id,
        version_id=version_id,
        created_at=datetime.now(UTC),
        endpoint="predict",
        matrix=matrix,
        species=probabilities.argmax(axis=1) + 1,
        probabilities=probabilities,
        latency_ms=3.0,
    )
    return writers.copy_data(rows)


# Where a committed single-row INSERT's PostgreSQL CPU goes: the shipped log, its INSERT prepared
# as the service sends it and as plain text, against copies of it (same rows, plain text) with
# less of its work. (name, table, statements that make the copy, whether the commit waits for
# the WAL flush, whether the INSERT is prepared).
FLOOR = [
    ("the log as shipped, the INSERT prepared once (as the service sends it)", "classifier_prediction", [], True, True),
    ("the log as shipped, the INSERT as text (parsed and planned each time)", "classifier_prediction", [], True, False),
    (
        "without the rule's trigger (same columns, checks and indexes)",
        "bench_log_unruled",
        ["CREATE TABLE bench_log_unruled (LIKE classifier_prediction INCLUDING ALL)"],
        True,
        False,
    ),
    (
        "primary key only (no secondary index, no rule)",
        "bench_log_keyed",
        [
            "CREATE TABLE bench_log_keyed (LIKE classifier_prediction INCLUDING DEFAULTS INCLUDING IDENTITY "
            "INCLUDING CONSTRAINTS)",
            "ALTER TABLE bench_log_keyed ADD PRIMARY KEY (id)",
        ],
        True,
        False,
    ),
    (
        "heap only (no index at all)",
        "bench_log_heap",
        ["CREATE TABLE bench_log_heap (LIKE classifier_prediction INCLUDING DEFAULTS INCLUDING IDENTITY)"],
        True,
        False,
    ),
    ("heap only, commit not waiting for the WAL flush (not durable)", "bench_log_heap", [], False, False),
]


def insert_floor(log: Log, count: int, first_id: int) -> None:
    """Single committed INSERTs into the log as shipped and into copies of it with less work."""
    copies = [table for _, table, statements, *_ in FLOOR if statements]
    for _, table, statements, *_ in FLOOR:
        for statement in statements:
            log.cursor.execute(statement)
        if statements:
            log.cursor.execute(f"INSERT INTO {table} SELECT * FROM classifier_prediction")
    log.cursor.execute("CHECKPOINT")
    log.session.commit()
    timings = {name: [] for name, *_ in FLOOR}
    for number in range(6):
        for name, table, _, durable, prepared in FLOOR if number % 2 == 0 else FLOOR[::-1]:
            log.cursor.execute(f"SET synchronous_commit TO {'on' if durable else 'off'}")
            log.session.commit()
            timings[name].append(log.inserts(count, first_id, table, prepared))
            first_id += count
    log.cursor.execute("SET synchronous_commit TO on")
    for table in copies:
        log.cursor.execute(f"DROP TABLE {table}")
    log.session.commit()
    say(f"\nsingle committed INSERT, PostgreSQL's CPU by what the table does (6 rounds of {count:,}, median)")
    say("| table | INSERT µs | PostgreSQL CPU µs |")
    say("|---|---|---|")
    for name, runs in timings.items():
        wall = statistics.median(timing[0] for timing in runs) / count
        cpu = statistics.median(timing[1] for timing in runs) / count
        say(f"| {name} | {wall * 1e6:.0f} | {cpu * 1e6:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preload", type=int, default=20, help="10,000-row batches written before timing")
    parser.add_argument("--batches", type=int, default=10, help="timed 10,000-row batches per shape")
    parser.add_argument("--inserts", type=int, default=1000, help="single-row INSERTs per round (6 rounds)")
    options = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "penguinsite.settings")
    os.environ["DATABASE_URL"] = f"{server_url()}/{SHAPES['shipped'][0]}"
    started = f"{datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs"
    say(f"log table: baseline (migration 0007) against shipped (head); {started}")
    for name, target in SHAPES.values():
        database_prepare(name, target)
    import django
    from django.conf import settings

    settings.DATABASES["baseline"] = {**settings.DATABASES["default"], "NAME": SHAPES["baseline"][0]}
    django.setup()
    try:
        logs = {shape: Log("default" if shape == "shipped" else shape, name) for shape, (name, _) in SHAPES.items()}
        rng = np.random.default_rng(0)
        next_id, copies = 1, {shape: [] for shape in logs}
        for number in range(options.preload + options.batches):
            payloads = {shape: batch_payload(number, next_id, log.versions, rng) for shape, log in logs.items()}
            next_id += ROWS
            order = list(logs) if number % 2 == 0 else list(logs)[::-1]  # take turns going first
            for shape in order:
                timing = logs[shape].copy(payloads[shape])
                if number >= options.preload:
                    copies[shape].append(timing)
        inserts = {shape: [] for shape in logs}
        for number in range(6):
            for shape in list(logs) if number % 2 == 0 else list(logs)[::-1]:
                inserts[shape].append(logs[shape].inserts(options.inserts, next_id))
            next_id += options.inserts

        say(
            f"\nlog holding {options.preload * ROWS:,} rows and more; "
            f"median of {options.batches} COPYs and 6 rounds of INSERTs"
        )
        say("| table | COPY 10,000 rows ms | PostgreSQL CPU ms | rows/s | INSERT µs | PostgreSQL CPU µs | indexes MB |")
        say("|---|---|---|---|---|---|---|")
        for shape, log in logs.items():
            wall = statistics.median(timing[0] for timing in copies[shape])
            cpu = statistics.median(timing[1] for timing in copies[shape])
            one = statistics.median(timing[0] for timing in inserts[shape]) / options.inserts
            one_cpu = statistics.median(timing[1] for timing in inserts[shape]) / options.inserts
            say(
                f"| {shape} | {wall * 1e3:.0f} | {cpu * 1e3:.0f} | {ROWS / wall:,.0f} | {one * 1e6:.0f} | "
                f"{one_cpu * 1e6:.0f} | {log.index_megabytes():.0f} |"
            )
        insert_floor(logs["shipped"], options.inserts, next_id)
        for log in logs.values():
            log.session.close()
    finally:
        from django.db import connections

        connections.close_all()
        for name, _ in SHAPES.values():
            admin(f'DROP DATABASE IF EXISTS "{name}"')


if __name__ == "__main__":
    main()
