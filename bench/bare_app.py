"""The baselines for single classify: a minimal WSGI app with no Django and no database.

Served by gunicorn with the production config (penguinsite/gunicorn.conf.py), like the
service. ``BENCH_MODE`` picks what it does per ``POST /classify/<name>``:

- ``bare``: the same JSON parsing (``json.loads`` + ``core.encoding.parse_one``) and
  the same loaded model the service serves (``classifier.serving.load_version``: ONNX when
  the version's runtime is onnx), loaded once per worker. Nothing is logged.
- ``old``: the earlier FastAPI service's pattern: unpickle the model file on every request
  (``joblib.load``) and call scikit-learn's ``predict``.

``BENCH_MANIFEST`` names a JSON file ``{model name: {version_id, artifact_path, sha256,
runtime, onnx_path, onnx_sha256}}`` written by bench/run.py from the registry.
"""

from __future__ import annotations

import gc
import json
import os

import joblib

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "penguinsite.settings")

from classifier import artifacts  # noqa: E402  (settings only: paths; no Django setup, no ORM)
from classifier.serving import load_version  # noqa: E402
from core.encoding import SPECIES, InputError, parse_one  # noqa: E402

MODE = os.environ.get("BENCH_MODE", "bare")
with open(os.environ["BENCH_MANIFEST"]) as _handle:
    MANIFEST: dict[str, dict] = json.load(_handle)
JSON_HEADERS = [("Content-Type", "application/json")]
gc.freeze()  # as penguinsite/wsgi.py does: what is loaded at start stays out of full collections


def _answer(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [*JSON_HEADERS, ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    name = environ.get("PATH_INFO", "").rsplit("/", 1)[-1]
    entry = MANIFEST.get(name)
    if entry is None or environ.get("REQUEST_METHOD") != "POST":
        return _answer(start_response, "404 Not Found", {"detail": "not found"})
    length = int(environ.get("CONTENT_LENGTH") or 0)
    try:
        matrix = parse_one(json.loads(environ["wsgi.input"].read(length)))
    except (ValueError, InputError) as exc:
        return _answer(start_response, "400 Bad Request", {"detail": str(exc)})
    if MODE == "old":
        pipeline = joblib.load(artifacts.absolute(entry["artifact_path"]))
        species_id = int(pipeline.predict(matrix)[0])
    else:
        model = load_version(
            version_id=entry["version_id"],
            artifact_path=entry["artifact_path"],
            sha256=entry["sha256"],
            runtime=entry["runtime"],
            onnx_path=entry["onnx_path"],
            onnx_sha256=entry["onnx_sha256"],
        )
        species_id = int(model.predict(matrix)[0])
    answer = {"model": name, "species_id": species_id, "species_name": SPECIES[species_id]}
    return _answer(start_response, "200 OK", answer)
