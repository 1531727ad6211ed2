"""Accuracy of each default model through the HTTP API over the whole dataset.

Usage: .venv/bin/python bench/accuracy.py
Runs in a throw-away var/ folder (SQLite, fresh artifacts): trains the five default models
with `manage.py train_model --all`, then classifies every complete row of data/penguins.csv
through POST /classify/<name> (Django test client) and compares with the true species.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["PENGUIN_VAR_DIR"] = tempfile.mkdtemp(prefix="penguin-accuracy-")
for variable in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "PENGUIN_ARTIFACTS_DIR"):
    os.environ.pop(variable, None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "penguinsite.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from training.catalogue import CATALOGUE  # noqa: E402

ISLANDS = {"Torgersen": 1, "Biscoe": 2, "Dream": 3}


def main() -> None:
    call_command("migrate", verbosity=0)
    call_command("train_model", "--all", stdout=open(os.devnull, "w"))
    with open(REPO / "data" / "penguins.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if "NA" not in row.values()]
    client = Client()
    print(f"{'model':<20} {'rows':>5} {'correct':>8} {'accuracy':>9}")
    for name in CATALOGUE:
        correct = 0
        for row in rows:
            body = {
                "island": ISLANDS[row["island"]],
                "bill_length_mm": float(row["bill_length_mm"]),
                "bill_depth_mm": float(row["bill_depth_mm"]),
                "flipper_length_mm": float(row["flipper_length_mm"]),
                "body_mass_g": float(row["body_mass_g"]),
                "sex": row["sex"],
                "year": int(row["year"]),
            }
            answer = client.post(f"/classify/{name}", body, content_type="application/json").json()
            correct += answer["species_name"] == row["species"]
        print(f"{name:<20} {len(rows):>5} {correct:>8} {correct / len(rows):>9.4f}")


if __name__ == "__main__":
    main()
