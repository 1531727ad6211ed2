"""`make bench`: the service's performance, each figure beside a baseline measured in the same run.

Runs against the local PostgreSQL in its own database (``penguin_bench``, created at the
start and dropped at the end) with a private artifacts folder, and serves through gunicorn
with the production config (``penguinsite/gunicorn.conf.py``) on 127.0.0.1 only. Sections:

- training: time per algorithm (trainer, ONNX export + parity, whole run) vs a bare ``fit``;
- compute: per-call model time, onnxruntime vs scikit-learn, in-process;
- single: POST /classify/<name> under wrk (8 connections, rounds taking turns between the
  servers, each once they are idle), vs "bare" (a minimal WSGI app, same parsing and model,
  no Django/DB) and "old" (unpickle per request);
- memory: RSS of a gunicorn worker with every default model loaded, vs the bare app's;
- batch: 10,000 rows in one POST /api/v1/models/<name>/predict (logged) vs in-process
  ``pipeline.predict``;
- scale: the predictions API page, a filtered page and the admin changelist at 1,000 and
  1,000,000 logged rows, and single classify with an empty and a full log.

Every step is bounded in time; the whole run takes about five minutes on two cores.
Options: ``--duration`` (seconds per wrk round), ``--rounds``, ``--rows`` (big log size), ``--only``.
Load comes from wrk (bench/wrk.py); Python's http.client (bench/loadgen.py) only sends the
one-at-a-time requests whose answers are read and checked: warm-up checks, the 10,000-row
batch, the logged-in pages of the scale section.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from profile import ORDER, layer_shares, py_spy, record  # noqa: E402

from loadgen import request_once  # noqa: E402
from wrk import WrkResult, wrk_load, wrk_path  # noqa: E402

from core.encoding import EXAMPLES  # noqa: E402
from tests.support.postgres import database_recreate as support_database_recreate  # noqa: E402
from tests.support.service import LiveServer, gunicorn, uvicorn  # noqa: E402

# What each server is (for the tables' notes), and the environment that makes it so.
SERVERS = {
    "django": "the service as configured by default: classify answered at the WSGI level (the classify door), "
    "rate-limit counts in Redis in batches, one durable INSERT per answer (synchronous commit), 4 workers each "
    "serving one request at a time once it has arrived whole (penguinsite/gunicorn.conf.py)",
    "bare": "bench/bare_app.py: same JSON parsing and loaded model, no Django, no database",
    "old": "the earlier service's pattern under this service's gunicorn config: unpickle the model file on every "
    "request, scikit-learn predict",
    "old-shipped": "the earlier service as it shipped (bench/old_service.py, a reconstruction): FastAPI under one "
    "uvicorn process, pydantic body, unpickling the model file on every request",
    "django-full": "the service with every lever off (PENGUIN_LEAN_PREDICT=0, which also closes the classify door, "
    "and PENGUIN_THROTTLE_BATCH=1): every middleware, DRF's full dispatch, one Redis round trip per request",
    "django-nodoor": "PENGUIN_CLASSIFY_DOOR=0: classify through Django's handler and the lean DRF path "
    "(the reduced middleware list kept)",
    "django-nolean": "PENGUIN_LEAN_PREDICT=0: every middleware and DRF's full dispatch (rate-limit batches kept)",
    "django-nobatch": "PENGUIN_THROTTLE_BATCH=1: one Redis round trip per request (lean path kept)",
    "django-threaded": "the threaded workers (4 × 4 threads, keep-alive; GUNICORN_WORKER_CLASS="
    "penguinsite.gunicorn_worker.ThreadWorker), all else as django",
    "bare-threaded": "bench/bare_app.py under the threaded workers",
    "old-threaded": "the earlier service's pattern under the threaded workers",
    "django-sync": "gunicorn's own sync workers (4, one request at a time each, read as it comes), all else as django",
    "bare-sync": "bench/bare_app.py under sync workers",
    "old-sync": "the earlier service's pattern under sync workers",
    "django-w2": "2 workers instead of 4",
    "django-w6": "6 workers instead of 4",
    "bare-w2": "bench/bare_app.py with 2 workers",
    "django-nohealth": "DATABASE_CONN_HEALTH_CHECKS=0: no connection check before the INSERT (still durable)",
    "django-ping": "DATABASE_HEALTH_CHECK_QUERY=1: Django's SELECT 1 before each request's INSERT instead of "
    "reading the connection's socket",
    "django-unprepared": "DATABASE_PREPARED_STATEMENTS=0: the log's INSERT sent as text, parsed and planned on "
    "every call, instead of prepared once per connection",
    "django-relaxed": "PENGUIN_LOG_SYNC_COMMIT=0 and DATABASE_CONN_HEALTH_CHECKS=0: the INSERT does not wait for "
    "the WAL flush, and no SELECT 1 precedes it (not durable: not a contender, for reference)",
}
VARIANT_ENV = {
    "django-full": {"PENGUIN_LEAN_PREDICT": "0", "PENGUIN_THROTTLE_BATCH": "1"},
    "django-nodoor": {"PENGUIN_CLASSIFY_DOOR": "0"},
    "django-nolean": {"PENGUIN_LEAN_PREDICT": "0"},
    "django-nobatch": {"PENGUIN_THROTTLE_BATCH": "1"},
    "django-threaded": {"GUNICORN_WORKER_CLASS": "penguinsite.gunicorn_worker.ThreadWorker"},
    "bare-threaded": {"GUNICORN_WORKER_CLASS": "penguinsite.gunicorn_worker.ThreadWorker"},
    "old-threaded": {"GUNICORN_WORKER_CLASS": "penguinsite.gunicorn_worker.ThreadWorker"},
    "django-sync": {"GUNICORN_WORKER_CLASS": "sync", "GUNICORN_THREADS": "1"},
    "bare-sync": {"GUNICORN_WORKER_CLASS": "sync", "GUNICORN_THREADS": "1"},
    "old-sync": {"GUNICORN_WORKER_CLASS": "sync", "GUNICORN_THREADS": "1"},
    "django-w2": {"GUNICORN_WORKERS": "2"},
    "django-w6": {"GUNICORN_WORKERS": "6"},
    "bare-w2": {"GUNICORN_WORKERS": "2"},
    "django-nohealth": {"DATABASE_CONN_HEALTH_CHECKS": "0"},
    "django-ping": {"DATABASE_HEALTH_CHECK_QUERY": "1"},
    "django-relaxed": {"PENGUIN_LOG_SYNC_COMMIT": "0", "DATABASE_CONN_HEALTH_CHECKS": "0"},
    "django-unprepared": {"DATABASE_PREPARED_STATEMENTS": "0"},
}
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/penguin_bench"
KINDS = tuple(SERVERS)
DEFAULT_KINDS = (
    "django",
    "bare",
    "old",
    "old-shipped",
    "django-nodoor",
    "django-ping",
    "django-unprepared",
    "django-full",
    "django-threaded",
    "bare-threaded",
    "old-threaded",
)
SECTIONS = ("training", "compute", "single", "memory", "profile", "batch", "scale")
ADELIE = EXAMPLES["Adelie"]
TARGETS: list[tuple[str, str, bool | None]] = []  # (target, measured, met)


def say(text: str = "") -> None:
    print(text, flush=True)


def table(title: str, header: list[str], rows: list[list], note: str = "") -> None:
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    say()
    say(f"## {title}")
    say()
    say("| " + " | ".join(cell.ljust(width) for cell, width in zip(cells[0], widths)) + " |")
    say("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for row in cells[1:]:
        say("| " + " | ".join(cell.rjust(width) for cell, width in zip(row, widths)) + " |")
    if note:
        say()
        say(note)


def target(name: str, measured: str, met: bool | None) -> None:
    TARGETS.append((name, measured, met))


# --- the database and the environment ---------------------------------------------------------


def database_recreate(url: str, *, drop_only: bool = False) -> None:
    name = urlparse(url).path.lstrip("/")
    if not name.startswith("penguin_bench"):
        raise SystemExit(f"refusing to drop database {name!r}: the bench only uses databases named penguin_bench*")
    support_database_recreate(url, drop_only=drop_only)


def redis_url() -> str:
    """The Redis the throttles count in, as in production; empty when none answers."""
    url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping()
    except Exception:
        return ""
    return url


def bench_environment(database_url: str, artifacts_dir: Path, cache_url: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GUNICORN_", "PENGUIN_", "CELERY_", "DJANGO_", "REDIS_URL", "DATABASE_"))
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "PENGUIN_ARTIFACTS_DIR": str(artifacts_dir),
            "DJANGO_DEBUG": "0",
            "DJANGO_SETTINGS_MODULE": "penguinsite.settings",
            # Counted in Redis as in production, at a rate the bench never reaches.
            "PENGUIN_THROTTLE_ANON": "100000000/min",
            "PENGUIN_THROTTLE_USER": "100000000/min",
            "PYTHONPATH": str(REPO),
        }
    )
    if cache_url:
        env["PENGUIN_CACHE_URL"] = cache_url
    return env


# --- gunicorn -------------------------------------------------------------------------------


class Server:
    """A gunicorn master (production config) started through tests/support, with what the bench reads off it."""

    def __init__(self, kind: str, live: LiveServer) -> None:
        self.kind = kind
        self.django = kind.startswith("django")
        self.live = live
        self.port = live.port
        self.process = live.process
        self.log_path = live.log

    def workers(self) -> list[int]:
        # uvicorn with one worker serves in its own process.
        return [self.process.pid] if self.kind == "old-shipped" else self.live.workers()

    def worker_rss_mb(self) -> list[float]:
        sizes = []
        for pid in self.workers():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]) / 1024)
            except OSError:
                pass
        return sizes

    def cpu_snapshot(self) -> tuple[dict[int, float], dict[int, float]]:
        """CPU time (user + system) used so far by each worker, and by each database session."""
        return cpu_by_pid(self.workers()), cpu_by_pid(database_backend_pids() if self.django else [])


@contextmanager
def serving(kind: str, env: dict[str, str], logs: Path, manifest: Path | None = None):
    django = kind.startswith("django")
    env = dict(env)
    env.update(VARIANT_ENV.get(kind, {}))
    if not django:
        env.update(BENCH_MODE=kind.split("-")[0], BENCH_MANIFEST=str(manifest))
        env["PYTHONPATH"] = f"{REPO}{os.pathsep}{REPO / 'bench'}"
    if kind == "old-shipped":
        with uvicorn(env, app="old_service:app", log=logs / f"uvicorn-{kind}.log", timeout=240) as live:
            yield Server(kind, live)
        return
    with gunicorn(
        env,
        app="penguinsite.wsgi" if django else "bare_app:application",
        workers=None,  # what penguinsite/gunicorn.conf.py says, as in production
        threads=None,
        ready_path="/healthz" if django else "/",
        ready_status=200 if django else None,
        log=logs / f"gunicorn-{kind}.log",
        timeout=240,  # start-up on a busy 2-core machine can take a minute
    ) as live:
        yield Server(kind, live)


def warm(server: Server, names: list[str], body: bytes, body_file: Path, rounds: int = 40) -> None:
    """Send each model enough requests that every worker has loaded it (and check the answers)."""
    wrk_load(port=server.port, path=f"/classify/{names[0]}", body_file=body_file, seconds=1)
    for name in names:
        for _ in range(rounds):
            status, data, _ = request_once(server.port, "POST", f"/classify/{name}", body, JSON_HEADERS, timeout=120)
            if status != 200:
                raise SystemExit(f"{server.kind}: POST /classify/{name} answered {status}: {data[:300]!r}")


JSON_HEADERS = {"Content-Type": "application/json"}


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots (a process that started in between counts whole)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def quiet(servers, *, longest: float = 5.0) -> None:
    """Wait until no server is still working off the round before (wrk stops sending, but the
    requests it already sent are answered: eight unpickling requests keep both cores busy for
    about a quarter of a second), so each round measures its own server alone."""
    pids = [pid for server in servers for pid in server.workers()] + database_backend_pids()
    started = time.monotonic()
    before = cpu_by_pid(pids)
    while time.monotonic() - started < longest:
        time.sleep(0.1)
        after = cpu_by_pid(pids)
        if cpu_used(before, after) <= 0.01:  # at most one clock tick in 100 ms: idle
            return
        before = after


# --- sections ---------------------------------------------------------------------------------


def section_training(names: list[str]) -> None:
    import warnings

    import matplotlib
    from sklearn.model_selection import train_test_split

    from classifier.estimators import inspect_estimator
    from classifier.onnx_runtime import onnx_export
    from core.datasets import dataset_load
    from training.catalogue import algorithm_get
    from training.models import TrainingRun
    from training.start import training_run_start
    from training.trainer import train

    matplotlib.use("Agg")
    import matplotlib.figure  # noqa: F401  (imported once here, not inside the first timed run)

    dataset = dataset_load(REPO / "data" / "penguins.csv")
    features, target_ = dataset.features(), dataset.target()
    x_train, _, y_train, _ = train_test_split(features, target_, test_size=0.2, stratify=target_, random_state=42)
    rows = []
    for name in names:
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = training_run_start(algorithm=name, trigger=TrainingRun.Trigger.COMMAND)
        whole = time.perf_counter() - started
        if run.status != "succeeded":
            raise SystemExit(f"training {name} failed: {run.error}")
        version = run.version
        # The parts, measured again in-process (no database).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            result = train(algorithm=name, dataset=dataset)
            trainer_seconds = time.perf_counter() - started
            started = time.perf_counter()
            onnx_export(result.pipeline, inspect_estimator(result.pipeline))
            export_seconds = time.perf_counter() - started
            pipeline = algorithm_get(name).build()
            started = time.perf_counter()
            pipeline.fit(x_train, y_train)
            fit_seconds = time.perf_counter() - started
        rows.append(
            [
                name,
                f"{fit_seconds * 1000:.0f}",
                f"{trainer_seconds * 1000:.0f}",
                f"{export_seconds * 1000:.0f}",
                f"{whole * 1000:.0f}",
                f"{whole / fit_seconds:.1f}×",
                version.runtime,
            ]
        )
    table(
        "Training time per algorithm (ms)",
        [
            "algorithm",
            "baseline: bare fit",
            "trainer (5-fold CV + fit + metrics)",
            "ONNX export + parity",
            "whole run (train_model path)",
            "whole / fit",
            "runtime",
        ],
        rows,
        "The whole run is what `manage.py train_model`, the admin and the API do: trainer, confusion-matrix "
        "picture, ONNX export with a parity check on all 333 rows, atomic files, registry rows.",
    )


def section_compute(names: list[str]) -> None:
    import warnings

    import joblib
    import numpy as np

    from classifier.artifacts import absolute
    from classifier.models import ModelVersion
    from classifier.selectors import serving_entry
    from classifier.serving import load_entry

    features = np.array([[ADELIE[field] for field in ADELIE]], dtype=np.float64)
    rows = []
    for name in names:
        version = ModelVersion.objects.get(model__name=name, model__active_version_id=models_f("id"))
        fast = load_entry(serving_entry(version))
        pipeline = joblib.load(absolute(version.artifact_path))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sklearn_us = per_call(pipeline.predict, features)
            sklearn_proba_us = per_call(pipeline.predict_proba, features)
            onnx_us = per_call(fast.predict, features)
            onnx_proba_us = per_call(functools.partial(fast.predict_with_proba, with_proba=True), features)
            session = fast.onnx.session if fast.onnx else None
            raw_us = per_call(functools.partial(session.run, None), {"input": features}) if session else float("nan")
        rows.append(
            [
                name,
                version.runtime,
                f"{sklearn_us:.0f}",
                f"{onnx_us:.0f}",
                f"{onnx_us / sklearn_us * 100:.1f}%",
                f"{sklearn_proba_us:.0f}",
                f"{onnx_proba_us:.0f}",
                f"{raw_us:.0f}",
            ]
        )
        if name == "randomforest":
            target(
                "randomforest compute on the fast path ≤ 10% of scikit-learn",
                f"{onnx_us / sklearn_us * 100:.1f}%",
                onnx_us / sklearn_us <= 0.10,
            )
    table(
        "Model compute per call, one penguin, in-process (µs)",
        [
            "model",
            "runtime",
            "baseline: sklearn predict",
            "served predict",
            "served / sklearn",
            "sklearn predict+proba",
            "served predict+proba",
            "onnxruntime run() alone",
        ],
        rows,
        "`served` is LoadedModel.predict as the request path calls it (feature columns, onnxruntime, species "
        "mapping); scikit-learn is the unpickled pipeline's own predict.",
    )


def per_call(function, argument, budget: float = 0.6) -> float:
    """Microseconds per call of ``function(argument)``, averaged over ``budget`` seconds."""
    function(argument)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < budget:
        function(argument)
        calls += 1
    return (time.perf_counter() - started) / calls * 1e6


def models_f(name: str):
    from django.db.models import F

    return F(name)


def write_manifest(path: Path) -> list[str]:
    from classifier.selectors import registry_active_entries

    entries = registry_active_entries()
    manifest = {
        name: {
            "version_id": entry.version_id,
            "artifact_path": entry.artifact_path,
            "sha256": entry.sha256,
            "runtime": entry.runtime,
            "onnx_path": entry.onnx_path,
            "onnx_sha256": entry.onnx_sha256,
        }
        for name, entry in entries.items()
    }
    path.write_text(json.dumps(manifest, indent=1))
    return sorted(manifest)


def database_backend_pids() -> list[int]:
    """The PostgreSQL server processes serving the bench database (their CPU is the service's too)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def measured_load(server: Server, *, path: str, body_file: Path, seconds: int) -> WrkResult:
    """One wrk run, plus the CPU time the server spent on it (workers; their database sessions)."""
    workers_before, database_before = server.cpu_snapshot()
    result = wrk_load(port=server.port, path=path, body_file=body_file, seconds=seconds)
    workers_after, database_after = server.cpu_snapshot()
    result.cpu_seconds = cpu_used(workers_before, workers_after)
    result.db_cpu_seconds = cpu_used(database_before, database_after)
    return result


@dataclass
class Combined:
    """Several rounds against one server: totals, and the median of the rounds' percentiles."""

    requests: int
    seconds: float
    errors: int
    first_error: str
    p50: float
    p99: float
    cpu_ms: float
    db_cpu_ms: float
    client_cpu_ms: float
    load: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def combined(parts: list[WrkResult], loads: list[float]) -> Combined:
    answered = max(1, sum(part.requests for part in parts))
    return Combined(
        requests=sum(part.requests for part in parts),
        seconds=sum(part.seconds for part in parts),
        errors=sum(part.errors for part in parts),
        first_error=next((part.first_error for part in parts if part.first_error), ""),
        p50=statistics.median(part.p50 for part in parts),
        p99=statistics.median(part.p99 for part in parts),
        cpu_ms=sum(part.cpu_seconds for part in parts) / answered * 1000,
        db_cpu_ms=sum(part.db_cpu_seconds for part in parts) / answered * 1000,
        client_cpu_ms=sum(part.client_cpu_seconds for part in parts) / answered * 1000,
        load=statistics.mean(loads),
    )


def load_cells(result: Combined) -> list[str]:
    errors = f" ({result.errors} errors: {result.first_error[:60]})" if result.errors else ""
    return [
        f"{result.rate:,.0f}{errors}",
        f"{result.p50:.2f}",
        f"{result.p99:.2f}",
        f"{result.p99 / result.p50:.1f}",
        f"{result.cpu_ms:.2f}",
        f"{result.db_cpu_ms:.2f}" if result.db_cpu_ms else "-",
        f"{result.client_cpu_ms:.2f}",
        f"{result.load:.1f}",
    ]


def section_single(
    names: list[str], env, logs, manifest, duration: int, rounds: int, results: dict, servers, workdir: Path
) -> None:
    """Every server runs at once; each model's load is split into rounds that take turns between
    the servers, so whatever else the machine is doing weighs on all of them alike."""
    body = json.dumps(ADELIE).encode()
    body_file = workdir / "adelie.json"
    body_file.write_bytes(body)
    wrk_path()
    parts: dict[str, dict[str, list]] = {}
    loads: dict[str, dict[str, list]] = {}
    with ExitStack() as stack:
        running = {kind: stack.enter_context(serving(kind, env, logs, manifest)) for kind in servers}
        for kind, server in running.items():
            results.setdefault("idle_rss", {})[kind] = server.worker_rss_mb()
            warm(server, names, body, body_file, rounds=3 if kind.startswith("old") else 40)
        for name in names:
            for _ in range(rounds):
                for kind, server in running.items():
                    quiet(running.values())
                    part = measured_load(server, path=f"/classify/{name}", body_file=body_file, seconds=duration)
                    parts.setdefault(name, {}).setdefault(kind, []).append(part)
                    loads.setdefault(name, {}).setdefault(kind, []).append(os.getloadavg()[0])
        for kind, server in running.items():
            results.setdefault("rss", {})[kind] = server.worker_rss_mb()
    measured = {
        name: {kind: combined(runs, loads[name][kind]) for kind, runs in by_kind.items()}
        for name, by_kind in parts.items()
    }
    results["single"] = measured
    rows = [[name, kind, *load_cells(measured[name][kind])] for name in names for kind in servers]
    table(
        f"Single classify: POST /classify/<name>, wrk -t2 -c8, {rounds} rounds of {duration} s per server taking turns",
        [
            "model",
            "server",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99/p50",
            "worker CPU ms/req",
            "database CPU ms/req",
            "wrk CPU ms/req",
            "load avg",
        ],
        rows,
        "\n".join(f"- {kind}: {SERVERS[kind]}" for kind in servers)
        + "\n\nreq/s: answers over the rounds' total time; p50/p99: the median of the rounds' own percentiles "
        "(wrk's latency histogram). CPU ms/req: CPU time of the gunicorn workers, of their PostgreSQL "
        "sessions, and of wrk, per answer. load avg: the 1-minute load average after each round (2 cores).",
    )

    # Each service variant against the baselines under the same gunicorn worker.
    def worker_of(kind: str) -> str:
        return next((suffix for suffix in ("-threaded", "-sync") if kind.endswith(suffix)), "")

    pairs = [(kind, f"bare{worker_of(kind)}", f"old{worker_of(kind)}") for kind in servers if kind.startswith("django")]
    pairs = [(kind, bare, old) for kind, bare, old in pairs if bare in servers and old in servers]
    if not pairs:
        return
    # The earlier service as it shipped (one uvicorn process) is a baseline of its own, beside
    # its pattern under this service's gunicorn config.
    shipped = "old-shipped" in servers

    def by_round(name: str, kind: str, baseline: str, form: str) -> str:
        # Each round of a server ran in the same minutes as the same round of the others: the
        # spread of the rounds' own ratios shows how far one run's figure can move.
        ratios = [ours.rate / theirs.rate for ours, theirs in zip(parts[name][kind], parts[name][baseline])]
        return f"rounds {form.format(min(ratios))}–{form.format(max(ratios))}"

    rows = []
    for name in names:
        row = [name]
        for kind, bare_kind, old_kind in pairs:
            django, bare, old = (measured[name][k] for k in (kind, bare_kind, old_kind))
            row += [f"{django.rate / bare.rate * 100:.0f}%", f"{django.rate / old.rate:.1f}×"]
            olds = [old_kind]
            if kind == "django" and shipped:
                row.append(f"{django.rate / measured[name]['old-shipped'].rate:.1f}×")
                olds.append("old-shipped")
            if kind not in ("django", "django-threaded", "django-sync"):
                continue
            if name == "randomforest":
                target(
                    f"{kind} ≥ 35% of {bare_kind} req/s (randomforest)",
                    f"{django.rate / bare.rate * 100:.0f}% ({by_round(name, kind, bare_kind, '{:.0%}')})",
                    django.rate / bare.rate >= 0.35,
                )
            for baseline in olds:
                times = django.rate / measured[name][baseline].rate
                spread = by_round(name, kind, baseline, "{:.1f}×")
                if name == "randomforest":
                    target(f"{kind} ≥ 40× {baseline} req/s (randomforest)", f"{times:.1f}× ({spread})", times >= 40)
                if name == "svm":
                    target(f"{kind} ≥ 2× {baseline} req/s (svm)", f"{times:.1f}× ({spread})", times >= 2)
            target(f"{kind}: p99 ≤ 3× p50 ({name})", f"{django.p99 / django.p50:.1f}×", django.p99 <= 3 * django.p50)
        rows.append(row)
    if {"django", "django-threaded"} <= set(servers):
        # What the default worker trades: its answers per second and its tail against the threaded one's.
        say()
        for name in names:
            ours, threaded = measured[name]["django"], measured[name]["django-threaded"]
            say(
                f"- {name}: the default worker answers {ours.rate / threaded.rate:.0%} of the threaded workers' req/s, "
                f"p99 {ours.p99:.1f} ms against {threaded.p99:.1f} ms"
            )
    header = ["model"]
    for kind, bare_kind, old_kind in pairs:
        header += [f"{kind} / {bare_kind}", f"{kind} / {old_kind}"]
        if kind == "django" and shipped:
            header.append("django / old-shipped")
    table(
        "Single classify: each service variant against the baselines under the same gunicorn config (req/s)",
        header,
        rows,
    )


def section_profile(env, logs, workdir: Path, seconds: int, kinds: list[str]) -> None:
    """py-spy on every worker of each server while wrk loads it: CPU per request, by layer."""
    if py_spy() is None:
        say("\n(profile: needs py-spy: `.venv/bin/pip install -r requirements-dev.txt`)")
        return
    body = json.dumps(ADELIE).encode()
    body_file = workdir / "adelie.json"
    body_file.write_bytes(body)
    columns: dict[str, dict[str, float]] = {}
    totals: dict[str, tuple[float, float, int]] = {}
    for kind in kinds:
        with serving(kind, env, logs) as server:
            warm(server, ["randomforest"], body, body_file)
            # Every worker: wrk's 8 kept-alive connections need not reach each of them.
            spies = []
            for pid in server.workers():
                raw = workdir / f"profile-{kind}-{pid}.txt"
                spies.append((raw, record(pid, seconds, raw)))
            result = measured_load(server, path="/classify/randomforest", body_file=body_file, seconds=seconds)
            counts, total = Counter(), 0
            for raw, spy in spies:
                _, error = spy.communicate(timeout=seconds + 60)
                if not raw.exists():
                    say(f"\n(profile: py-spy failed: {error.decode(errors='replace')[-300:]})")
                    return
                worker_counts, worker_total = layer_shares(raw)
                counts += worker_counts
                total += worker_total
        worker_ms = result.cpu_seconds / max(1, result.requests) * 1000
        database_ms = result.db_cpu_seconds / max(1, result.requests) * 1000
        columns[kind] = {layer: counts.get(layer, 0) / max(1, total) * worker_ms for layer in ORDER}
        totals[kind] = (worker_ms, database_ms, total)
    rows = []
    for layer in ORDER:
        cells = []
        for kind in kinds:
            worker_ms = totals[kind][0]
            ms = columns[kind][layer]
            cells += [f"{ms:.2f}", f"{ms / worker_ms * 100:.0f}%" if worker_ms else "-"]
        rows.append([layer, *cells])
    rows.append(
        ["worker CPU per request (from /proc)", *[c for kind in kinds for c in (f"{totals[kind][0]:.2f}", "100%")]]
    )
    rows.append(
        [
            "PostgreSQL's own CPU per request (its session process)",
            *[c for kind in kinds for c in (f"{totals[kind][1]:.2f}" if totals[kind][1] else "-", "")],
        ]
    )
    header = ["layer"] + [c for kind in kinds for c in (f"{kind} ms/req", "share")]
    table(
        f"Profile: CPU per POST /classify/randomforest by layer (py-spy on every worker, wrk -t2 -c8, {seconds} s; "
        f"load average {os.getloadavg()[0]:.1f})",
        header,
        rows,
        "Each sample of the worker on the CPU is given to the innermost frame's layer (bench/profile.py); "
        f"samples: {', '.join(f'{kind} {totals[kind][2]:,}' for kind in kinds)}. ms/req = share × the workers' "
        "CPU per request measured from /proc over the same run.",
    )


def section_memory(results: dict) -> None:
    rss = results.get("rss", {})
    idle = results.get("idle_rss", {})
    if not rss:
        say("\n(memory: needs the single section)")
        return
    rows = []
    for kind in SERVERS:
        if kind in rss:
            rows.append(
                [
                    kind,
                    f"{max(idle.get(kind) or [0]):.0f}",
                    f"{max(rss[kind]):.0f}",
                    " ".join(f"{size:.0f}" for size in rss[kind]),
                ]
            )
    table(
        "Memory: RSS of one gunicorn worker (MB)",
        ["server", "after boot", "every default model loaded (max)", "all workers"],
        rows,
        "bare is the baseline: the same five models loaded by a minimal WSGI app without Django.",
    )
    peak = max(rss["django"])
    target("worker RSS ≤ 300 MB", f"{peak:.0f} MB", peak <= 300)


def _session_cookie() -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first() or user_model.objects.create_superuser(
        "bench", "bench@example.invalid", secrets.token_urlsafe(16)
    )
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _time_get(port: int, path: str, cookie: str, repeat: int) -> tuple[float, int, int]:
    headers = {"Cookie": f"sessionid={cookie}"}
    status, data, _ = request_once(port, "GET", path, headers=headers)  # warm
    times = []
    for _ in range(repeat):
        status, data, seconds = request_once(port, "GET", path, headers=headers)
        times.append(seconds * 1000)
    return statistics.median(times), status, len(data)


BATCH_WARM, BATCH_RUNS, BREAKDOWN_RUNS = 8, 15, 5


def section_batch(names: list[str], env, logs, results: dict) -> None:
    import warnings

    import joblib
    import numpy as np

    from classifier.artifacts import absolute
    from classifier.models import ModelVersion
    from core.datasets import dataset_load

    dataset = dataset_load(REPO / "data" / "penguins.csv")
    features = dataset.features()
    rng = np.random.default_rng(0)
    matrix = features[rng.integers(0, len(features), size=10_000)]
    fields = list(ADELIE)
    integral = {"island", "sex", "year"}
    instances = [
        {field: (int(value) if field in integral else float(value)) for field, value in zip(fields, row)}
        for row in matrix.tolist()
    ]
    body = json.dumps({"instances": instances}).encode()
    # The single-classify sections before this one logged hundreds of thousands of rows: the
    # batch is timed on a settled log, not against the autovacuum and checkpoint they set off.
    database_settle()
    rows = []
    with serving("django", env, logs) as server:
        for name in names:
            path = f"/api/v1/models/{name}/predict"
            status, data, _ = request_once(server.port, "POST", path, body, JSON_HEADERS, timeout=60)
            if status != 200:
                say(f"\n(batch: POST {path} answered {status}: {data[:200]!r}; skipped)")
                return
            answer = json.loads(data)
            logged = answer.get("predictions") or answer.get("results") or []
            if len(logged) != 10_000:
                say(f"\n(batch: expected 10,000 answers, got {len(logged)}; skipped)")
                return
            # Each of the workers answers its first batches slower (allocations that later requests
            # reuse): BATCH_WARM requests first, so the figure is the steady state, as the
            # single-classify rounds are.
            for _ in range(BATCH_WARM):
                request_once(server.port, "POST", path, body, JSON_HEADERS, timeout=60)
            times = []
            for _ in range(BATCH_RUNS):
                status, data, seconds = request_once(server.port, "POST", path, body, JSON_HEADERS, timeout=60)
                times.append(seconds)
            version = ModelVersion.objects.get(model__name=name, model__active_version_id=models_f("id"))
            pipeline = joblib.load(absolute(version.artifact_path))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipeline.predict(matrix)
                started = time.perf_counter()
                for _ in range(3):
                    pipeline.predict(matrix)
                inprocess = (time.perf_counter() - started) / 3
            seconds = statistics.median(times)
            rows.append(
                [
                    name,
                    f"{seconds * 1000:.0f}",
                    f"{10_000 / seconds:,.0f}",
                    f"{inprocess * 1000:.0f}",
                    f"{10_000 / inprocess:,.0f}",
                    f"{inprocess / seconds:.2f}",
                ]
            )
            if name == "randomforest":
                target(
                    "10k batch with logging ≥ 80,000 rows/s (randomforest)",
                    f"{10_000 / seconds:,.0f} rows/s",
                    10_000 / seconds >= 80_000,
                )
    table(
        f"Batch: 10,000 rows in one POST /api/v1/models/<name>/predict, logged "
        f"(median of {BATCH_RUNS}, after {BATCH_WARM} to warm the workers)",
        [
            "model",
            "end to end ms",
            "rows/s",
            "baseline: in-process pipeline.predict ms",
            "rows/s",
            "end-to-end speed / in-process",
        ],
        rows,
        "End to end: client JSON upload (1.1 MB), parsing and validation, prediction with probabilities, "
        "10,000 Prediction rows written, the JSON answer. In-process: scikit-learn predict on the same "
        "array, nothing else.",
    )
    batch_breakdown(body, "randomforest")


ALONE = "alone, one after the other: "


def batch_breakdown(body: bytes, name: str) -> None:
    """Where a 10,000-row batch's time goes: each step of the request path, timed in-process."""
    import gc

    import orjson

    from classifier.api.views.predict import answer_rows, predict_answer
    from classifier.models import Prediction
    from classifier.predict import prediction_make
    from classifier.prediction_log import STREAM_BLOCK_ROWS
    from classifier.services.predictions import prediction_log
    from classifier.serving import load_entry
    from classifier.serving_registry import live_registry
    from core.api.parsers import json_body_load
    from core.encoding import parse_rows

    entry = live_registry.entry(name)
    model = load_entry(entry)
    state: dict = {}
    # As each worker does after start-up (penguinsite/wsgi.py): what is loaded so far leaves the
    # collector's full passes, which would otherwise scan the bench's own objects mid-step.
    gc.collect()
    gc.freeze()

    def streamed() -> None:
        outcome = prediction_make(
            model_name=name,
            matrix=state["matrix"],
            endpoint=Prediction.Endpoint.PREDICT,
            with_probabilities=True,
            rows_answer=answer_rows,
        )
        state.update(outcome=outcome)

    def rows_alone() -> list:
        outcome = state["outcome"]
        return answer_rows(outcome.prediction_ids, outcome.species_ids, outcome.probabilities)

    def answer() -> bytes:
        return orjson.dumps(predict_answer(state["outcome"]))

    steps = {
        "read the JSON body (orjson)": lambda: state.update(data=json_body_load(body, numbers_only=True)),
        "validate and convert (parse_rows)": lambda: state.update(
            matrix=parse_rows(state["data"]["instances"], prefix="instances")
        ),
        # The service's step: blocks of rows predicted, and their answer built, while PostgreSQL
        # stores the blocks before.
        f"predict, log and build the answer's rows in blocks of {STREAM_BLOCK_ROWS:,} (one COPY, streamed)": streamed,
        # Its three parts one after the other (as the service did before it streamed): not
        # counted in the sum.
        ALONE + "predict with probabilities (onnxruntime)": lambda: model.predict_with_proba(
            state["matrix"], with_proba=True
        ),
        ALONE + "log 10,000 rows (ids reserved, one binary COPY)": lambda: prediction_log(
            model_id=entry.model_id,
            version_id=entry.version_id,
            matrix=state["matrix"],
            species_ids=state["outcome"].species_ids,
            probabilities=state["outcome"].probabilities,
            latency_ms=1.0,
            endpoint=Prediction.Endpoint.PREDICT,
        ),
        ALONE + "build the answer's rows": rows_alone,
        "encode the answer (orjson)": answer,
    }
    timings = {label: [] for label in steps}
    for repeat in range(1 + BREAKDOWN_RUNS):  # the first pass warms up and is not counted
        for label, step in steps.items():
            started = time.perf_counter()
            step()
            if repeat:
                timings[label].append(time.perf_counter() - started)
    medians = {label: statistics.median(values) * 1000 for label, values in timings.items()}
    total = sum(ms for label, ms in medians.items() if not label.startswith(ALONE))
    rows = [
        [label, f"{ms:.0f}", "not in the sum" if label.startswith(ALONE) else f"{ms / total * 100:.0f}%"]
        for label, ms in medians.items()
    ]
    rows.append(["sum of the steps", f"{total:.0f}", f"{10_000 / total * 1000:,.0f} rows/s"])
    table(
        f"Batch breakdown: one 10,000-row request to {name}, step by step in-process "
        f"(median of {BREAKDOWN_RUNS} after one to warm up, ms)",
        ["step", "ms", "share"],
        rows,
        "Not included: HTTP transfer of 1.1 MB in and 1.5 MB out, gunicorn, Django and DRF dispatch.",
    )


def database_settle() -> None:
    """Measure the steady state, not the wake of a bulk load: vacuum the log and flush its pages."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE classifier_prediction")
        cursor.execute("CHECKPOINT")


def database_copy(url: str, copy_url: str) -> None:
    """Make the database ``copy_url`` names a copy of the one ``url`` names (PostgreSQL's
    CREATE DATABASE … TEMPLATE: nobody may be connected to the original meanwhile)."""
    import psycopg2
    from django.db import connections
    from psycopg2 import sql

    from tests.support.postgres import with_database

    database_recreate(copy_url, drop_only=True)
    connections.close_all()
    source, name = urlparse(url).path.lstrip("/"), urlparse(copy_url).path.lstrip("/")
    admin = psycopg2.connect(with_database(url, "postgres"), connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            for attempt in range(50):  # sessions of servers just stopped may take a moment to end
                try:
                    cursor.execute(
                        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(source))
                    )
                    return
                except psycopg2.errors.ObjectInUse:
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
    finally:
        admin.close()


def section_scale(
    names: list[str], env, logs, duration: int, rounds: int, total_rows: int, results: dict, workdir: Path
) -> None:
    """The log's pages at 1,000 and ``total_rows`` rows; then single classify against the full
    log and against a copy of the same registry whose log is empty, two servers whose rounds
    take turns, so that the VM's speed, which drifts over minutes, weighs on both alike."""
    from django.core.management import call_command

    from classifier.synthetic import prediction_log_clear

    body = json.dumps(ADELIE).encode()
    body_file = workdir / "adelie.json"
    body_file.write_bytes(body)
    cookie = _session_cookie()
    pages = {
        "API list page": "/api/v1/predictions/",
        "API filtered page": "/api/v1/predictions/?model=randomforest&species=3",
        "API version page": "/api/v1/predictions/?model=randomforest&version=1",
        "admin changelist": "/admin/classifier/prediction/",
    }
    timings: dict[str, dict[str, tuple]] = {}
    fill_seconds = 0.0
    database_url = env["DATABASE_URL"]
    empty_url = database_url + "_empty"
    prediction_log_clear()
    database_copy(database_url, empty_url)  # the same registry, its log empty
    empty_logs = logs / "empty-log"
    empty_logs.mkdir(exist_ok=True)
    parts: dict[str, list] = {"empty": [], "full": []}
    loads: dict[str, list] = {"empty": [], "full": []}
    try:
        with serving("django", env, logs) as server:
            for label, rows in (("1k", 1_000), ("big", total_rows)):
                started = time.perf_counter()
                call_command("generate_predictions", total=rows, clear=(label == "1k"), verbosity=0)
                if label == "big":
                    fill_seconds = time.perf_counter() - started
                database_settle()
                for page, path in pages.items():
                    timings.setdefault(page, {})[label] = _time_get(server.port, path, cookie, repeat=15)
            with serving("django", {**env, "DATABASE_URL": empty_url}, empty_logs) as empty:
                servers = {"empty": empty, "full": server}
                for each in servers.values():
                    warm(each, ["randomforest"], body, body_file)
                _log_empty(empty_url)  # the warm-up's rows
                database_settle()
                for number in range(rounds):
                    for label in ("empty", "full") if number % 2 == 0 else ("full", "empty"):
                        quiet(servers.values())
                        parts[label].append(
                            measured_load(
                                servers[label], path="/classify/randomforest", body_file=body_file, seconds=duration
                            )
                        )
                        loads[label].append(os.getloadavg()[0])
    finally:
        database_recreate(empty_url, drop_only=True)
    classify = {label: combined(parts[label], loads[label]) for label in parts}
    rows = []
    limits = {"API list page": 2.0, "API filtered page": 2.0, "API version page": 2.0, "admin changelist": 3.0}
    for page, path in pages.items():
        small, big = timings[page]["1k"], timings[page]["big"]
        ok = small[1] == 200 and big[1] == 200
        ratio = big[0] / small[0]
        rows.append(
            [
                page,
                path,
                f"{small[0]:.1f}",
                f"{big[0]:.1f}",
                f"{ratio:.2f}×",
                "" if ok else f"status {small[1]}/{big[1]}",
            ]
        )
        target(
            f"{page}: 1k → {total_rows:,} rows ≤ {limits[page]:g}×",
            f"{ratio:.2f}×" if ok else "not served",
            ok and ratio <= limits[page],
        )
    empty, full = classify["empty"], classify["full"]
    rows.append(
        [
            "single classify (randomforest, p50)",
            "/classify/randomforest",
            f"{empty.p50:.2f}",
            f"{full.p50:.2f}",
            f"{full.p50 / empty.p50:.2f}×",
            f"{empty.rate:,.0f} → {full.rate:,.0f} req/s",
        ]
    )
    target(
        f"single classify: empty → {total_rows:,} rows ≤ 1.3×",
        f"{full.p50 / empty.p50:.2f}× p50, {empty.rate / full.rate:.2f}× req/s",
        full.p50 <= 1.3 * empty.p50,
    )
    table(
        f"Scale: pages at 1,000 and {total_rows:,} logged rows (median of 15, ms); "
        "classify with an empty and a full log",
        ["what", "path", "at 1k (baseline) / empty", f"at {total_rows:,} / full", "growth", "notes"],
        rows,
        f"The log was filled with `manage.py generate_predictions --total {total_rows}` (COPY) in "
        f"{fill_seconds:.0f} s. Pages are fetched one at a time by a logged-in staff user. Classify: "
        f"{rounds} rounds of {duration} s (wrk -t2 -c8) per log, taking turns between a server on the full "
        "log and one on a copy of the same registry with an empty log.",
    )


def _log_empty(url: str) -> None:
    """Empty the log of the database ``url`` names (a server's, not this process's)."""
    import psycopg2

    session = psycopg2.connect(url, connect_timeout=5)
    try:
        with session, session.cursor() as cursor:
            cursor.execute("TRUNCATE classifier_prediction, classifier_predictionfeedback")
    finally:
        session.close()


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=2, help="seconds per wrk round (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="single: rounds per model and server (default 3)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the big log (default 1,000,000)")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--keep", action="store_true", help="keep the penguin_bench database and artifacts")
    parser.add_argument("--models", nargs="*", help="single/batch: only these models")
    parser.add_argument("--servers", nargs="*", choices=KINDS, default=list(DEFAULT_KINDS), help="single: servers")
    args = parser.parse_args()
    sections = set(args.only or SECTIONS)
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    started = time.perf_counter()

    workdir = Path(tempfile.mkdtemp(prefix="penguin-bench-"))
    artifacts_dir, logs = workdir / "artifacts", workdir / "logs"
    logs.mkdir()
    cache_url = redis_url()
    env = bench_environment(database_url, artifacts_dir, cache_url)
    os.environ.clear()
    os.environ.update(env)
    say(
        f"# make bench — {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"load average {' '.join(f'{value:.1f}' for value in os.getloadavg())}"
    )
    say(f"database {database_url} (created for this run); artifacts {artifacts_dir}")
    say(
        f"gunicorn: penguinsite/gunicorn.conf.py (workers={env.get('GUNICORN_WORKERS') or 'default'}); "
        f"rate-limit cache: {cache_url or 'local memory (no Redis answered)'}"
    )

    database_recreate(database_url)
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from training.catalogue import DEFAULT_ALGORITHMS

        names = list(DEFAULT_ALGORITHMS)
        if "training" in sections:
            section_training(names)
        else:
            call_command("train_model", all=True, verbosity=0, stdout=io.StringIO())
        manifest = workdir / "manifest.json"
        names = write_manifest(manifest)
        if "compute" in sections:
            section_compute(names)
        results: dict = {}
        if "single" in sections or "memory" in sections:
            section_single(
                args.models or names, env, logs, manifest, args.duration, args.rounds, results, args.servers, workdir
            )
            section_memory(results)
        if "profile" in sections:
            section_profile(
                env, logs, workdir, seconds=max(4, args.duration * args.rounds), kinds=["django-full", "django"]
            )
        if "batch" in sections:
            section_batch(["randomforest", "knn"], env, logs, results)
        if "scale" in sections:
            section_scale(names, env, logs, args.duration, args.rounds, args.rows, results, workdir)
        table(
            "Targets",
            ["target", "measured", "met"],
            [[name, measured, {True: "yes", False: "NO", None: "-"}[met]] for name, measured, met in TARGETS],
        )
        say(f"\nbench finished in {time.perf_counter() - started:.0f} s")
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            database_recreate(database_url, drop_only=True)
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"kept {database_url} and {workdir}")


if __name__ == "__main__":
    main()
