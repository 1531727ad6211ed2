"""Live accuracy from feedback (Wilson interval, per-class recall) and latency percentiles."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def wilson_interval(correct: int, total: int, *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927), without continuity correction.

    Unlike the normal-approximation interval it stays within [0, 1] and is sensible for a
    handful of labels or an accuracy near 1.
    """
    if total <= 0:
        raise ValueError("The interval needs at least one labelled row.")
    if not 0 <= correct <= total:
        raise ValueError(f"correct must be between 0 and {total}; got {correct}.")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    share = correct / total
    z2n = z * z / total
    centre = (share + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    # At 0 of n (n of n) the bound is exactly 0 (1); rounding would leave it a hair inside.
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == total else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class LiveAccuracy:
    labelled: int
    correct: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    recall: dict[int, dict]  # class → {"labelled", "correct", "recall"}

    @property
    def reason(self) -> str:
        return "" if self.labelled else "No prediction in the window has feedback (a true species) yet."


def live_accuracy(predicted: np.ndarray, actual: np.ndarray, classes: Iterable[int]) -> LiveAccuracy:
    """Accuracy of labelled rows only: ``actual`` holds the true class, or 0/negative when unlabelled."""
    predicted = np.asarray(predicted)
    actual = np.asarray(actual)
    labelled_mask = actual > 0
    truth = actual[labelled_mask]
    hits = predicted[labelled_mask] == truth
    labelled, correct = int(truth.size), int(hits.sum())
    recall = {}
    for key in classes:
        of_class = truth == key
        count, right = int(of_class.sum()), int(hits[of_class].sum())
        recall[key] = {"labelled": count, "correct": right, "recall": right / count if count else None}
    if not labelled:
        return LiveAccuracy(0, 0, None, None, None, recall)
    low, high = wilson_interval(correct, labelled)
    return LiveAccuracy(labelled, correct, correct / labelled, low, high, recall)


def latency_percentiles(latency_ms: np.ndarray) -> dict[str, float | None]:
    """p50 and p95 with linear interpolation between order statistics (numpy's default)."""
    values = np.asarray(latency_ms, dtype=float)
    if values.size == 0:
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": float(p50), "p95": float(p95)}
