"""The reference profile a version is monitored against: its training rows and class counts.

Stored as JSON on the version (a few hundred rows of seven numbers: about 10 kB). At most
``MAX_REFERENCE_ROWS`` rows are kept (a seeded sample beyond that), which keeps the small-data
drift tests the right ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .drift import MAX_REFERENCE_ROWS

TRAINING_SPLIT = "training split"


def profile_build(
    features: np.ndarray,
    target: np.ndarray,
    *,
    fields: Sequence[str],
    source: str = TRAINING_SPLIT,
    seed: int = 0,
) -> dict:
    """The JSON profile of ``features`` (rows × fields) and their classes ``target``."""
    features = np.asarray(features, dtype=float)
    target = np.asarray(target, dtype=int)
    if len(features) != len(target) or features.ndim != 2 or features.shape[1] != len(fields):
        raise ValueError("features must be rows × fields with one class per row.")
    if len(features) > MAX_REFERENCE_ROWS:
        keep = np.sort(np.random.default_rng(seed).choice(len(features), MAX_REFERENCE_ROWS, replace=False))
        features, target = features[keep], target[keep]
    classes, counts = np.unique(target, return_counts=True)
    return {
        "source": source,
        "rows": int(len(features)),
        "values": {name: features[:, index].tolist() for index, name in enumerate(fields)},
        "class_counts": {str(int(key)): int(count) for key, count in zip(classes, counts)},
    }


@dataclass(frozen=True)
class Reference:
    source: str
    rows: int
    values: dict[str, np.ndarray]
    class_counts: dict[int, int]

    @classmethod
    def from_profile(cls, profile: dict) -> Reference:
        return cls(
            source=profile["source"],
            rows=int(profile["rows"]),
            values={name: np.asarray(column, dtype=float) for name, column in profile["values"].items()},
            class_counts={int(key): int(count) for key, count in profile["class_counts"].items()},
        )

    def matrix(self, fields: Sequence[str]) -> np.ndarray:
        missing = [name for name in fields if name not in self.values]
        if missing:
            raise ValueError(f"The reference profile has no column {', '.join(missing)}.")
        return np.column_stack([self.values[name] for name in fields])
