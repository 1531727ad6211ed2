"""Where a classify request's CPU goes, by layer: py-spy samples one gunicorn worker under wrk load.

``py-spy record --format raw`` writes each sampled stack as ``frame;frame;...;leaf count``
(``--gil``: only samples where the worker held the GIL, i.e. ran Python or C code called
from it; waiting in accept, recv or select for a client, PostgreSQL or Redis releases it and is
not counted). Each sample goes to one layer: walking from the leaf
towards the root, the first frame that belongs to a known layer names it, so a ``json.loads``
called by DRF's parser counts as parsing while one called by the access log counts as gunicorn.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# (layer, substrings of a frame "function (file:line)"). A sample goes to the innermost frame that
# matches a layer of LAYERS; only a stack with no such frame falls back to FALLBACK (the generic
# Django and gunicorn code that every request runs through).
DATABASE = "log INSERT and other database calls (psycopg2, Django db, connection checks)"
HANDLER = "Django handler and URL resolution"
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "model call (onnxruntime, species mapping)",
        ("onnxruntime/", "classifier/serving.py", "onnx_runtime.py", "classifier/predict.py"),
    ),
    (
        DATABASE,
        (
            "psycopg2",
            "django/db/",
            "classifier/prediction_log.py",
            "prediction_log (",
            "_prediction_insert",
            "close_old_connections",
            "close_caches",
            "ConnectionHandler",
            "ConnectionProxy",
        ),
    ),
    (
        "rate limiting (throttles, Redis round trip)",
        ("rest_framework/throttling.py", "core/api/throttling.py", "redis/"),
    ),
    (
        "authentication",
        ("rest_framework/authentication.py", "django/contrib/auth/", "_authenticate", "get_user (", "get_user@"),
    ),
    (
        "parsing and validation (parser, parse_one)",
        ("rest_framework/parsers.py", "core/api/parsers.py", "core/encoding.py", "_parse (", "_load_data_and_files"),
    ),
    (
        "rendering (JSON renderer, Response)",
        ("rest_framework/renderers.py", "rest_framework/response.py", "django/http/response.py"),
    ),
    ("Prometheus metrics", ("prometheus_client/", "classifier/metrics.py")),
    ("DRF dispatch and content negotiation (or the lean path's)", ("rest_framework/", "core/api/lean.py")),
    ("the classify door's own steps (request id, headers, hand-over)", ("penguinsite/classify_door.py",)),
    ("the view and the service call", ("classifier/api/", "classifier/serving_registry.py", "classifier/selectors.py")),
    ("the view and the service call", ("classifier/services/",)),
    (
        "middleware (sessions, CSRF, messages, request id, security, …)",
        (
            "django/middleware/",
            "django/contrib/sessions/",
            "django/contrib/messages/",
            "whitenoise/",
            "penguinsite/middleware",
            "Middleware.",
            "CookieStorage",
            "FallbackStorage",
            "SessionStore",
            "get_host (",
        ),
    ),
    (HANDLER, ("resolve_request", "URLResolver", "get_resolver", "set_script_prefix")),
]
FALLBACK: list[tuple[str, tuple[str, ...]]] = [
    (HANDLER, ("django/",)),
    ("gunicorn (HTTP parse, write, access log)", ("gunicorn/", "penguinsite/logs.py", "logging/")),
]
OTHER = "other"
ORDER = list(dict.fromkeys([layer for layer, _ in LAYERS + FALLBACK] + [OTHER]))


def layer_of(stack: str) -> str:
    frames = stack.split(";")
    for rules in (LAYERS, FALLBACK):
        for frame in reversed(frames):
            for layer, needles in rules:
                if any(needle in frame for needle in needles):
                    return layer
    return OTHER


def py_spy() -> str | None:
    return shutil.which("py-spy") or (
        str(Path(sys.executable).parent / "py-spy") if (Path(sys.executable).parent / "py-spy").exists() else None
    )


def record(pid: int, seconds: int, output: Path, rate: int = 250) -> subprocess.Popen:
    """Start py-spy on ``pid`` for ``seconds`` (non-blocking sampling: the worker is never paused)."""
    argv = [py_spy(), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(rate)]
    argv += ["--format", "raw", "--gil", "--nonblocking", "--output", str(output)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def layer_shares(raw: Path) -> tuple[Counter, int]:
    """Samples per layer in a py-spy raw file, and the total."""
    counts: Counter = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        counts[layer_of(stack)] += int(count)
    return counts, sum(counts.values())
