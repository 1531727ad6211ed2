"""gunicorn settings shared by `make run`, docker-compose and the CI stack check.

Besides the usual knobs (all from GUNICORN_* variables) this file sets up what the
service's observability needs from the master process: a fresh PROMETHEUS_MULTIPROC_DIR
for the workers' metric files (summed by /metrics, see classifier/metrics.py), the
child_exit hook that retires a dead worker's files, and JSON logs (penguinsite/logs.py)
for gunicorn's own error and access lines.
"""

import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        raise SystemExit(f"{name}: expected a whole number; got {raw!r}.") from None


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = _int("GUNICORN_WORKERS", min(4, multiprocessing.cpu_count() * 2))
# Each worker serves one request at a time, and only once it has arrived whole: a request
# still arriving waits in the worker's selector, so slow clients hold no worker and are let go
# after GUNICORN_REQUEST_READ_TIMEOUT (15 s). Chosen by measurement over the threaded worker
# (bench/README.md): under load, a p99 a quarter to a half shorter and within 3× the median,
# for 1–22% fewer requests/s.
# GUNICORN_WORKER_CLASS=penguinsite.gunicorn_worker.ThreadWorker gives threaded workers with
# keep-alive (GUNICORN_THREADS each), bounded by the same read timeout.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "").strip() or "penguinsite.gunicorn_worker.BufferingWorker"
threads = _int("GUNICORN_THREADS", 4)
timeout = _int("GUNICORN_TIMEOUT", 120)  # in-process training (no broker) can take a minute
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 0)
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
if os.environ.get("PENGUIN_LOG_FORMAT", "json").strip().lower() != "text":
    # One JSON object per line; access lines carry the response's X-Request-ID.
    logger_class = "penguinsite.logs.GunicornJsonLogger"
# gunicorn's control socket (for gunicornc) defaults to one path per user, which two
# servers on one machine would fight over: off unless GUNICORN_CONTROL_SOCKET names a path.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True
# Worker heartbeats on a RAM disk: a container's overlay filesystem can stall them.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"

# --- Prometheus multiprocess mode ----------------------------------------------------------
# Must be in the environment before a worker imports prometheus_client. A folder given by
# the operator is emptied at start; one made here is removed again when the master exits.
_metrics_dir_created = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir_created:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="penguin-metrics-")


def on_starting(server):
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _metrics_dir_created:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def when_ready(server):
    """Say where the service answers once it does: the landing page, the admin and the docs."""
    for listener in server.LISTENERS:
        base = str(listener).rstrip("/")  # "http://127.0.0.1:8000" for a TCP socket
        if not base.startswith("http://"):
            continue
        server.log.info("Serving %s/  admin: %s/admin/  API docs: %s/api/docs/", base, base, base)
