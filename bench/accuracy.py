"""Accuracy of each default model through the HTTP API: on its held-out rows, and on all rows.

Usage: .venv/bin/python bench/accuracy.py
Runs in a throw-away folder (SQLite, fresh artifacts) that it removes when done: trains the
five default models with `manage.py train_model --all`, then classifies every complete row of
data/penguins.csv through POST /classify/<name> (Django test client) and compares with the
true species. "held-out" is the version's own test split (the rows it never trained on, the
split recomputed from the seed and test size recorded on the version); "all rows" includes
the training rows, so it is higher than what a new penguin should expect.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
FOLDER = tempfile.mkdtemp(prefix="penguin-accuracy-")
os.environ["PENGUIN_VAR_DIR"] = FOLDER
for variable in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "PENGUIN_ARTIFACTS_DIR"):
    os.environ.pop(variable, None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "penguinsite.settings")
os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")  # the table only, not a log line per training

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from classifier.models import ModelVersion  # noqa: E402
from core.datasets import dataset_load  # noqa: E402
from training.catalogue import CATALOGUE  # noqa: E402


def held_out_rows(version: ModelVersion, rows: int, target) -> set[int]:
    """Positions of the rows the version was tested on: its split, recomputed as the trainer made it."""
    _, test = train_test_split(
        range(rows), test_size=version.dataset["test_size"], stratify=target, random_state=version.dataset["seed"]
    )
    return set(test)


def main() -> None:
    call_command("migrate", verbosity=0)
    with open(os.devnull, "w") as quiet:
        call_command("train_model", "--all", stdout=quiet)
    dataset = dataset_load(REPO / "data" / "penguins.csv")
    target = dataset.target()
    records = dataset.frame.to_dict("records")
    client = Client()
    print(f"{'model':<20} {'held-out rows':>13} {'accuracy':>9}   {'all rows':>8} {'accuracy':>9}")
    for name in CATALOGUE:
        version = ModelVersion.objects.get(model__name=name, number=1)
        test_rows = held_out_rows(version, len(records), target)
        correct = held_out_correct = 0
        for position, row in enumerate(records):
            body = {field: row[field] for field in ("island", "sex")}
            body.update({field: float(row[field]) for field in ("bill_length_mm", "bill_depth_mm")})
            body.update({field: float(row[field]) for field in ("flipper_length_mm", "body_mass_g")})
            body["year"] = int(row["year"])
            answer = client.post(f"/classify/{name}", body, content_type="application/json").json()
            right = answer["species_name"] == row["species"]
            correct += right
            held_out_correct += right and position in test_rows
        print(
            f"{name:<20} {len(test_rows):>13} {held_out_correct / len(test_rows):>9.4f}   "
            f"{len(records):>8} {correct / len(records):>9.4f}"
        )


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(FOLDER, ignore_errors=True)
