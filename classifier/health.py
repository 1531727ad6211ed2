"""Liveness and readiness probes."""

from __future__ import annotations

import os
import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from . import artifacts


@require_GET
def healthz(request):
    """The process is up and answering."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    return None


def _check_broker() -> str | None:
    if not settings.CELERY_BROKER_URL:
        return None
    from penguinsite.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=1)
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
