"""Feature drift, dataset drift and prediction drift, with Evidently's defaults for small data.

Evidently (``evidently.calculations.stattests.registry._get_default_stattest``) picks a test
per column when the reference has at most 1,000 rows:

- a numeric column with more than 5 distinct values (reference and current together):
  two-sample Kolmogorov–Smirnov (``scipy.stats.ks_2samp``);
- 3 to 5 distinct values: chi-squared goodness of fit of the current counts against the
  reference shares scaled to the current size (``scipy.stats.chisquare``);
- at most 2 distinct values: the two-proportion z-test with a pooled proportion.

Each test's default threshold is 0.05 (``StatTest.default_threshold``); here a column drifts
when p ≤ 0.05. The dataset drifts when the share of drifting columns is at least 0.5
(``get_dataset_drift(drift_share=0.5)``). References above 1,000 rows would get distance
measures in Evidently; the registry keeps at most 1,000 reference rows, so these rules hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

DRIFT_THRESHOLD = 0.05
DATASET_DRIFT_SHARE = 0.5
MAX_REFERENCE_ROWS = 1000
MAX_CATEGORIES = 5  # at most this many distinct values: a categorical test, not KS
BINARY = 2

KS, CHI2, Z = "ks", "chi2", "z"


@dataclass(frozen=True)
class StatResult:
    test: str  # "ks" | "chi2" | "z"
    statistic: float | None  # None when infinite (a value the reference never had)
    p_value: float


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    test: str
    statistic: float | None
    p_value: float
    drift: bool

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "drift": self.drift,
        }


@dataclass(frozen=True)
class DatasetDrift:
    features: list[FeatureDrift]
    drifted: int
    share: float
    dataset_drift: bool

    @property
    def drifted_names(self) -> list[str]:
        return [feature.name for feature in self.features if feature.drift]


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def choose_test(reference: np.ndarray, current: np.ndarray) -> str:
    """The test Evidently's default picks for a numeric column of a small reference."""
    distinct = np.unique(np.concatenate([reference, current])).size
    if distinct > MAX_CATEGORIES:
        return KS
    return CHI2 if distinct > BINARY else Z


def ks_test(reference: np.ndarray, current: np.ndarray) -> StatResult:
    """Two-sided two-sample Kolmogorov–Smirnov (scipy's default method: exact for small samples)."""
    result = stats.ks_2samp(reference, current)
    return StatResult(KS, float(result.statistic), float(result.pvalue))


def chi2_counts(observed: np.ndarray, reference_counts: np.ndarray) -> StatResult:
    """Goodness of fit of ``observed`` counts against ``reference_counts`` scaled to the same total.

    A category the reference never had but the current window has makes the statistic
    infinite and p = 0: the window certainly does not come from the reference.
    """
    observed = np.asarray(observed, dtype=float)
    reference_counts = np.asarray(reference_counts, dtype=float)
    expected = reference_counts * (observed.sum() / reference_counts.sum())
    if np.any((expected == 0) & (observed > 0)):
        return StatResult(CHI2, None, 0.0)
    seen = expected > 0
    if seen.sum() < 2:  # one category in both: nothing can differ
        return StatResult(CHI2, 0.0, 1.0)
    result = stats.chisquare(observed[seen], expected[seen])
    return StatResult(CHI2, _finite(result.statistic), float(result.pvalue))


def chi2_test(reference: np.ndarray, current: np.ndarray) -> StatResult:
    """Chi-squared over the values seen in either sample (Evidently's ``chisquare`` test)."""
    keys = np.unique(np.concatenate([reference, current]))
    reference_counts = np.array([np.count_nonzero(reference == key) for key in keys])
    current_counts = np.array([np.count_nonzero(current == key) for key in keys])
    return chi2_counts(current_counts, reference_counts)


def z_test(reference: np.ndarray, current: np.ndarray) -> StatResult:
    """Two-proportion z-test, pooled variance, two-sided (Evidently's ``z`` test).

    The proportion compared is the share of rows *not* holding the smallest value.
    """
    keys = np.unique(np.concatenate([reference, current]))
    if keys.size < 2:
        return StatResult(Z, 0.0, 1.0)
    first = keys[0]
    n1, n2 = reference.size, current.size
    p1 = np.count_nonzero(reference != first) / n1
    p2 = np.count_nonzero(current != first) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return StatResult(Z, float(z), float(2 * stats.norm.sf(abs(z))))


_TESTS = {KS: ks_test, CHI2: chi2_test, Z: z_test}


def feature_drift(
    name: str, reference: np.ndarray, current: np.ndarray, *, threshold: float = DRIFT_THRESHOLD
) -> FeatureDrift:
    """Test one column of the current window against the same column of the reference."""
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    if reference.size == 0 or current.size == 0:
        raise ValueError(f"{name}: both the reference and the current window need rows.")
    test = choose_test(reference, current)
    result = _TESTS[test](reference, current)
    return FeatureDrift(name, result.test, result.statistic, result.p_value, result.p_value <= threshold)


def dataset_drift(
    names: Sequence[str],
    reference: np.ndarray,
    current: np.ndarray,
    *,
    threshold: float = DRIFT_THRESHOLD,
    share: float = DATASET_DRIFT_SHARE,
) -> DatasetDrift:
    """Every column of ``current`` (rows × features) against ``reference``; drift when ≥ ``share`` drift."""
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    features = [
        feature_drift(name, reference[:, index], current[:, index], threshold=threshold)
        for index, name in enumerate(names)
    ]
    drifted = sum(feature.drift for feature in features)
    drift_share = drifted / len(features)
    return DatasetDrift(features, drifted, drift_share, drift_share >= share)


@dataclass(frozen=True)
class PredictionDrift:
    test: str
    statistic: float | None
    p_value: float
    drift: bool
    current: dict[int, float]  # class → share of the window's predictions
    reference: dict[int, float]  # class → share of the reference

    def as_dict(self, labels: dict[int, str]) -> dict:
        return {
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "drift": self.drift,
            "current": {labels[key]: value for key, value in self.current.items()},
            "reference": {labels[key]: value for key, value in self.reference.items()},
        }


def prediction_drift(
    predicted: np.ndarray, reference_counts: dict[int, int], *, threshold: float = DRIFT_THRESHOLD
) -> PredictionDrift:
    """The predicted class mix against the reference class frequencies, chi-squared goodness of fit."""
    classes = sorted(reference_counts)
    predicted = np.asarray(predicted)
    observed = np.array([np.count_nonzero(predicted == key) for key in classes])
    unknown = predicted.size - observed.sum()
    if unknown:
        raise ValueError(f"{unknown} prediction(s) name a class the reference does not have.")
    expected = np.array([reference_counts[key] for key in classes])
    result = chi2_counts(observed, expected)
    total = max(predicted.size, 1)
    return PredictionDrift(
        test=CHI2,
        statistic=result.statistic,
        p_value=result.p_value,
        drift=result.p_value <= threshold,
        current={key: float(count / total) for key, count in zip(classes, observed)},
        reference={key: float(count / expected.sum()) for key, count in zip(classes, expected)},
    )
