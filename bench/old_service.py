"""The earlier service as it shipped, for the bench's ``old-shipped`` baseline.

A reconstruction from the earlier HTTP contract (its code is not part of this repository):
FastAPI served by one uvicorn process, ``POST /classify/<name>`` reading the penguin through a
pydantic model, unpickling the model file on every request (``joblib.load``) and answering
with scikit-learn's ``predict``; nothing logged. bench/bare_app.py's ``old`` mode runs the same
per-request work under this service's gunicorn config instead (4 workers × 4 threads here),
which is not how the earlier service ran.

``BENCH_MANIFEST`` is the file bench/run.py writes (see bench/bare_app.py).
"""

from __future__ import annotations

import json
import os

import joblib
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "penguinsite.settings")

from classifier import artifacts  # noqa: E402  (settings only: where the files are)
from core.encoding import SPECIES, parse_one  # noqa: E402

with open(os.environ["BENCH_MANIFEST"]) as _handle:
    MANIFEST: dict[str, dict] = json.load(_handle)

app = FastAPI()


class Penguin(BaseModel):
    island: int
    bill_length_mm: float
    bill_depth_mm: float
    flipper_length_mm: float
    body_mass_g: float
    sex: int
    year: int


@app.get("/")
def index() -> dict:
    return {"models": sorted(MANIFEST)}


@app.post("/classify/{name}")
def classify(name: str, penguin: Penguin) -> dict:
    entry = MANIFEST.get(name)
    if entry is None:
        raise HTTPException(status_code=404, detail=f"model {name} not found")
    pipeline = joblib.load(artifacts.absolute(entry["artifact_path"]))
    species_id = int(pipeline.predict(parse_one(penguin.model_dump()))[0])
    return {"model": name, "species_id": species_id, "species_name": SPECIES[species_id]}
