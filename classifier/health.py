"""Liveness and readiness probes.

``/readyz`` must answer fast whatever is down (an orchestrator probes it every few
seconds with a short timeout), so each check fails fast: the broker check gives Redis
BROKER_TIMEOUT_SECONDS to connect and answer PING, with no retries.
"""

from __future__ import annotations

import os
import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET
from kombu import Connection
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import artifacts


@require_GET
def healthz(request):
    """The process is up and answering."""
    return JsonResponse({"status": "ok"})


# Connect and PING budget for the broker: a local Redis answers in about a millisecond.
BROKER_TIMEOUT_SECONDS = 0.05


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        connection.close_if_unusable_or_obsolete()
        return f"database unreachable: {type(exc).__name__}"
    return None


def _check_broker() -> str | None:
    url = settings.CELERY_BROKER_URL
    if not url:
        return None
    try:
        if url.startswith(("redis://", "rediss://")):
            # redis-py's default client retries with back-off; a probe must not.
            client = Redis.from_url(
                url,
                socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
                socket_timeout=BROKER_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
            try:
                client.ping()
            finally:
                client.close()
        else:
            with Connection(url, connect_timeout=BROKER_TIMEOUT_SECONDS) as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:
        return f"broker unreachable: {type(exc).__name__}"
    return None


def _check_artifacts() -> str | None:
    folder = artifacts.root()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"artifacts folder cannot be created: {exc.strerror}"
    if not os.access(folder, os.W_OK):
        return "artifacts folder is not writable"
    return None


def serving_unready_reason() -> str | None:
    """Why this process cannot classify (database or artifacts folder), or None when it can."""
    return _check_database() or _check_artifacts()


@require_GET
def readyz(request):
    """Database, broker (when configured) and artifacts folder; 503 names what failed."""
    started = time.perf_counter()
    checks = {"database": _check_database(), "broker": _check_broker(), "artifacts": _check_artifacts()}
    failed = {name: reason for name, reason in checks.items() if reason}
    body = {
        "status": "unavailable" if failed else "ok",
        "checks": {name: (reason or "ok") for name, reason in checks.items()},
        "failed": sorted(failed),
        "seconds": round(time.perf_counter() - started, 4),
    }
    if not settings.CELERY_BROKER_URL:
        body["checks"]["broker"] = "not configured (training runs in-process)"
    return JsonResponse(body, status=503 if failed else 200)
