"""Monitoring's speed targets, each beside a baseline measured in the same run (PostgreSQL).

- report: the monitoring report (service and ``GET /api/v1/models/<name>/monitoring``) on a
  1,000,000-row log, the window capped at 10,000 rows; baseline: the same report on a
  1,000-row log. Target: under 1 s.
- admin: the model's monitoring page in the admin on the same log; baseline: the model list.
  Target: under 1.5 s.
- batch: a 10,000-row ``POST /api/v1/models/<name>/predict`` end to end (in-process Django test
  client: parsing, model, COPY into the typed log, JSON answer); target at least 60,000 rows/s.
  Baseline: COPY of the same 10,000 rows into a scratch table shaped like the earlier log
  (JSON inputs and probabilities, same indexes) against the typed table.
- false alarms (``--false-alarms N``): N windows of 300 rows resampled from the dataset against
  the default split's training rows; how many raise dataset drift.

Runs in its own database ``penguin_bench_monitoring`` (created and dropped) on the PostgreSQL of
``BENCH_DATABASE_URL`` (default postgres://postgres@127.0.0.1:5432/), artifacts in a temporary
folder. Usage: ``python bench/monitoring.py [--rows 1000000] [--false-alarms 2000] [--keep]``.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATABASE = "penguin_bench_monitoring"
TARGETS: list[tuple[str, str, bool]] = []


def say(text: str = "") -> None:
    print(text, flush=True)


def timed(function, repeat: int) -> float:
    """Median wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def server_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/").rstrip("/")


def database_recreate(*, drop_only: bool = False) -> None:
    import psycopg2

    parts = urlparse(server_url())
    connection = psycopg2.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname="postgres",
    )
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{DATABASE}"')
        if not drop_only:
            cursor.execute(f'CREATE DATABASE "{DATABASE}"')
    connection.close()


def setup(artifacts: Path) -> None:
    os.environ.update(
        {
            "DATABASE_URL": f"{server_url()}/{DATABASE}",
            "PENGUIN_ARTIFACTS_DIR": str(artifacts),
            "DJANGO_SETTINGS_MODULE": "penguinsite.settings",
            "DJANGO_DEBUG": "0",
            "PENGUIN_THROTTLE_ANON": "100000000/min",
            "PENGUIN_THROTTLE_USER": "100000000/min",
            "PENGUIN_LOG_FORMAT": "text",
        }
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("train_model", "knn", stdout=io.StringIO())


def client_for_staff():
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("bench", password="bench-pass-123")
    client = Client()
    client.force_login(user)
    return client


def section_report(rows: int, client) -> None:
    from django.core.management import call_command

    from classifier.models import MLModel
    from classifier.services.monitoring import monitoring_report

    model = MLModel.objects.get(name="knn")
    url = f"/api/v1/models/{model.name}/monitoring"
    admin_page = f"/admin/classifier/mlmodel/{model.pk}/monitoring/"
    results = {}
    for label, total in (("1k", 1_000), ("big", rows)):
        started = time.perf_counter()
        call_command("generate_predictions", total=total, clear=(label == "1k"), verbosity=0)
        fill = time.perf_counter() - started
        report = monitoring_report(model=model)
        results[label] = {
            "fill": fill,
            "window": report["window"]["predictions"],
            "service": timed(lambda: monitoring_report(model=model), 5),
            "api": timed(lambda: client.get(url), 5),
            "admin": timed(lambda: client.get(admin_page), 3),
            "admin list": timed(lambda: client.get("/admin/classifier/mlmodel/"), 3),
        }
        assert client.get(url).status_code == 200 and client.get(admin_page).status_code == 200
    small, big = results["1k"], results["big"]
    say(f"\n## Monitoring report and admin page: 1,000 vs {rows:,} logged rows (median, ms)\n")
    say(f"| what | at 1,000 rows (baseline) | at {rows:,} rows |")
    say("|---|---|---|")
    for key in ("service", "api", "admin", "admin list"):
        say(f"| {key} | {small[key] * 1000:.0f} | {big[key] * 1000:.0f} |")
    say(f"\nWindow rows analysed: {small['window']:,} and {big['window']:,} (capped).")
    say(f"The big log was filled with generate_predictions (COPY) in {big['fill']:.0f} s.")
    TARGETS.append(("report on the big log < 1 s (API)", f"{big['api'] * 1000:.0f} ms", big["api"] < 1.0))
    TARGETS.append(("admin monitoring page < 1.5 s", f"{big['admin'] * 1000:.0f} ms", big["admin"] < 1.5))


def section_batch(client) -> None:
    import numpy as np
    from django.db import connection

    from classifier import prediction_log
    from classifier.models import MLModel
    from core.datasets import dataset_load
    from core.encoding import FIELDS, SPECIES, row_to_input

    features = dataset_load(REPO / "data" / "penguins.csv").features()
    rng = np.random.default_rng(0)
    matrix = features[rng.integers(0, len(features), 10_000)]
    instances = [row_to_input(row) for row in matrix]
    body = json.dumps({"instances": instances})
    url = "/api/v1/models/knn/predict"

    def post():
        response = client.post(url, body, content_type="application/json")
        assert response.status_code == 200, response.content[:300]

    post()
    end_to_end = timed(post, 5)

    # COPY only: the same rows into the typed log and into a table shaped like the earlier one.
    model = MLModel.objects.get(name="knn")
    probabilities = np.tile([0.1, 0.2, 0.7], (len(matrix), 1))
    species = [3] * len(matrix)
    names = [SPECIES[code] for code in sorted(SPECIES)]
    inputs_template = (
        "{" + ", ".join(f'"{f}": ' + ("%d" if f in ("island", "sex", "year") else "%r") for f in FIELDS) + "}"
    )
    proba_template = "{" + ", ".join(f'"{name}": %r' for name in names) + "}"
    with connection.cursor() as cursor:
        # A regular (logged) table like the earlier log: JSON columns, the same indexes and keys.
        cursor.execute(
            "CREATE TABLE earlier_log (id bigint PRIMARY KEY, "
            "model_id int REFERENCES classifier_mlmodel (id) DEFERRABLE INITIALLY DEFERRED, "
            "version_id int REFERENCES classifier_modelversion (id) DEFERRABLE INITIALLY DEFERRED, "
            "created_at timestamptz, endpoint varchar(16), inputs jsonb, species_id smallint, "
            "probabilities jsonb, latency_ms float8)"
        )
        for index in ("created_at", "model_id, id DESC", "version_id, id DESC", "species_id, id DESC"):
            cursor.execute(f"CREATE INDEX ON earlier_log ({index})")

    def copy_earlier():
        # The earlier writer: JSON text per row from templates, ids reserved, one COPY.
        ids = prediction_log.reserve_ids(len(matrix))
        inputs = [inputs_template % tuple(row) for row in matrix.tolist()]
        proba = [proba_template % tuple(row) for row in probabilities.round(6).tolist()]
        text = "".join(
            f"{n}\t{model.pk}\t{model.active_version_id}\t2026-12-01T00:00:00+00:00\tpredict\t{i}\t{s}\t{p}\t1.0\n"
            for n, i, s, p in zip(ids, inputs, species, proba)
        )
        with connection.cursor() as cursor:
            cursor.copy_expert(
                "COPY earlier_log (id, model_id, version_id, created_at, endpoint, inputs, species_id, "
                "probabilities, latency_ms) FROM STDIN",
                io.StringIO(text),
            )

    def copy_typed():
        from django.utils import timezone

        prediction_log.prediction_copy(
            model_id=model.pk,
            version_id=model.active_version_id,
            created_at=timezone.now(),
            endpoint="predict",
            matrix=matrix,
            blocks=[prediction_log.LogBlock(np.asarray(species), probabilities, 1.0)],
        )

    earlier, typed = timed(copy_earlier, 7), timed(copy_typed, 7)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE earlier_log")
    rate = len(matrix) / end_to_end
    say("\n## A 10,000-row logged batch (median of 5)\n")
    say("| what | ms | rows/s |")
    say("|---|---|---|")
    rows = (
        ("POST /api/v1/models/knn/predict, 10,000 rows, end to end (in-process)", end_to_end),
        ("COPY of the rows into the earlier JSON-shaped log (baseline)", earlier),
        ("binary COPY of the rows into the typed log (encoding included)", typed),
    )
    for label, seconds in rows:
        say(f"| {label} | {seconds * 1000:.0f} | {len(matrix) / seconds:,.0f} |")
    TARGETS.append(("10,000-row logged batch ≥ 60,000 rows/s", f"{rate:,.0f} rows/s", rate >= 60_000))


def section_false_alarms(windows: int) -> None:
    import numpy as np
    from sklearn.model_selection import train_test_split

    from classifier.monitoring.drift import dataset_drift
    from core.datasets import dataset_load
    from core.encoding import FIELDS

    dataset = dataset_load(REPO / "data" / "penguins.csv")
    features, target = dataset.features(), dataset.target()
    reference = train_test_split(features, target, test_size=0.2, stratify=target, random_state=42)[0]
    rng = np.random.default_rng(0)
    alarms, per_feature = 0, np.zeros(len(FIELDS))
    for _ in range(windows):
        result = dataset_drift(FIELDS, reference, features[rng.integers(0, len(features), 300)])
        alarms += result.dataset_drift
        per_feature += [feature.drift for feature in result.features]
    say(f"\n## False alarms: {windows:,} windows of 300 rows resampled from the dataset\n")
    say(f"Dataset drift raised in {alarms} of {windows:,} windows ({alarms / windows:.1%}).")
    say("Per feature: " + ", ".join(f"{name} {rate:.2%}" for name, rate in zip(FIELDS, per_feature / windows)))
    TARGETS.append(("false alarms ≤ 10% of windows", f"{alarms / windows:.1%}", alarms / windows <= 0.10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the big log (default 1,000,000)")
    parser.add_argument("--false-alarms", type=int, default=200, help="windows to resample (default 200)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    options = parser.parse_args()
    database_recreate()
    try:
        with tempfile.TemporaryDirectory(prefix="penguin-bench-monitoring-") as folder:
            setup(Path(folder))
            client = client_for_staff()
            # As penguinsite/wsgi.py does after start-up: objects alive now are never scanned by
            # the garbage collector, whose full passes would otherwise land inside the timings.
            gc.freeze()
            section_report(options.rows, client)
            section_batch(client)
            section_false_alarms(options.false_alarms)
            from django.db import connections

            connections.close_all()
    finally:
        if not options.keep:
            database_recreate(drop_only=True)
    say("\n## Targets\n")
    for name, measured, met in TARGETS:
        say(f"- {'met' if met else 'NOT MET'}: {name}: {measured}")


if __name__ == "__main__":
    main()
