"""The repository's data files, the example penguins, and penguins made up for a test."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from core.encoding import EXAMPLES

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data" / "penguins.csv"
DATA_V1 = REPO / "data" / "penguins_v1.csv"

ADELIE, CHINSTRAP, GENTOO = (EXAMPLES[name] for name in ("Adelie", "Chinstrap", "Gentoo"))


def random_penguins(count: int, seed: int = 7) -> list[dict]:
    """Plausible penguins (all fields in range), some with island and sex given by name."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        rows.append(
            {
                "island": rng.choice([1, 2, 3, "Biscoe", "dream"]),
                "bill_length_mm": round(rng.uniform(32, 60), 1),
                "bill_depth_mm": round(rng.uniform(13, 21), 1),
                "flipper_length_mm": rng.randint(172, 231),
                "body_mass_g": rng.randint(2700, 6300),
                "sex": rng.choice([0, 1, "female", "MALE"]),
                "year": rng.choice([2007, 2008, 2009]),
            }
        )
    return rows


def legacy_pickle():
    """A pipeline as the earlier service made them: 9 unnamed features, v1 class codes."""
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    with open(DATA_V1, newline="") as handle:
        rows = list(csv.DictReader(handle))
    features = np.array(
        [
            [
                float(r["island"]),
                float(r["bill_length_mm"]),
                float(r["bill_depth_mm"]),
                float(r["flipper_length_mm"]),
                float(r["body_mass_g"]),
                float(r["sex"]),
                float(r["year"]),
                float(r["bill_length_mm"]) / float(r["bill_depth_mm"]),
                float(r["body_mass_g"]) / 1000,
            ]
            for r in rows
        ]
    )
    target = np.array([int(r["species"]) for r in rows])
    pipeline = Pipeline(
        [("scaler", StandardScaler()), ("clf", RandomForestClassifier(n_estimators=20, random_state=1))]
    )
    return pipeline.fit(features, target)
