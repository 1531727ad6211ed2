"""The monitoring statistics, each checked against an independent computation on the same numbers.

The expected values are computed here from first principles with the standard library only
(exact lattice-path counts for Kolmogorov–Smirnov, closed forms of the chi-squared and normal
tails, the Wilson formula), so a mistake in how scipy is called would show.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from classifier.monitoring.drift import (
    choose_test,
    dataset_drift,
    feature_drift,
    prediction_drift,
)
from classifier.monitoring.quality import latency_percentiles, live_accuracy, wilson_interval

# ---- independent computations ------------------------------------------------------------


def ks_exact(reference: list[float], current: list[float]) -> tuple[float, float]:
    """Two-sided two-sample KS: D from the two empirical CDFs, P(D ≥ d) by counting lattice paths."""
    n, m = len(reference), len(current)
    scaled = 0  # D * n * m, an integer
    for value in sorted(set(reference) | set(current)):
        i = sum(1 for x in reference if x <= value)
        j = sum(1 for x in current if x <= value)
        scaled = max(scaled, abs(i * m - j * n))
    # Paths from (0, 0) to (n, m) that stay strictly inside |i*m - j*n| < scaled.
    inside = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            if abs(i * m - j * n) >= scaled:
                continue
            if i == 0 and j == 0:
                inside[i][j] = 1
            else:
                inside[i][j] = (inside[i - 1][j] if i else 0) + (inside[i][j - 1] if j else 0)
    total = math.comb(n + m, n)
    return scaled / (n * m), float(Fraction(total - inside[n][m], total))


def chi2_sf(x: float, df: int) -> float:
    """Upper tail of the chi-squared distribution for an integer df (closed forms)."""
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= (x / 2) / k
            total += term
        return math.exp(-x / 2) * total
    tail = math.erfc(math.sqrt(x / 2))
    term, total = 1.0, 0.0
    for k in range(1, (df - 1) // 2 + 1):
        term = term * x / (2 * k - 1) if k > 1 else 1.0
        total += term
    return tail + math.sqrt(2 * x / math.pi) * math.exp(-x / 2) * total


def chi2_gof(observed: list[int], reference: list[int]) -> tuple[float, float]:
    scale = sum(observed) / sum(reference)
    statistic = sum((o - r * scale) ** 2 / (r * scale) for o, r in zip(observed, reference))
    return statistic, chi2_sf(statistic, len(observed) - 1)


def z_two_proportions(ones_ref: int, n_ref: int, ones_cur: int, n_cur: int) -> tuple[float, float]:
    p1, p2 = ones_ref / n_ref, ones_cur / n_cur
    pooled = (ones_ref + ones_cur) / (n_ref + n_cur)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
    return z, math.erfc(abs(z) / math.sqrt(2))


Z_975 = 1.959963984540054  # the standard normal's 97.5th percentile


def wilson(correct: int, total: int) -> tuple[float, float]:
    p, z = correct / total, Z_975
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-12)


# ---- the independent computations themselves, on textbook values ------------------------------


def test_reference_tails_match_known_values():
    assert close(chi2_sf(3.841458820694124, 1), 0.05)
    assert close(chi2_sf(5.991464547107979, 2), 0.05)
    assert close(chi2_sf(7.814727903251178, 3), 0.05)
    assert close(chi2_sf(11.070497693516351, 5), 0.05)


# ---- test selection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "current", "test"),
    [
        ([1, 2, 3, 4, 5, 6], [1, 2], "ks"),  # 6 distinct values
        ([1, 2, 3], [4, 5], "chi2"),  # 5 distinct values
        ([1, 2, 3], [1, 2, 3], "chi2"),
        ([0, 1], [1, 1], "z"),
        ([2007, 2007], [2007], "z"),
        ([1.5, 2.5, 3.5], [4.5, 5.5, 6.5], "ks"),  # distinct values counted over both samples
    ],
)
def test_the_test_follows_the_number_of_distinct_values(reference, current, test):
    assert choose_test(np.array(reference, float), np.array(current, float)) == test


# ---- feature drift -------------------------------------------------------------------------


def test_ks_matches_the_exact_lattice_path_computation_with_ties():
    rng = np.random.default_rng(7)
    reference = np.round(rng.normal(200, 14, 120), 0)
    current = np.round(rng.normal(203, 14, 90), 0)
    result = feature_drift("flipper_length_mm", reference, current)
    statistic, p_value = ks_exact(reference.tolist(), current.tolist())
    assert result.test == "ks"
    assert close(result.statistic, statistic)
    assert close(result.p_value, p_value)
    assert result.drift is (p_value <= 0.05)


def test_ks_flags_a_shifted_column_with_the_exact_small_p_value():
    rng = np.random.default_rng(11)
    reference = np.round(rng.normal(4200, 800, 100), -1)
    current = reference[:80] * 1.25
    result = feature_drift("body_mass_g", reference, current)
    statistic, p_value = ks_exact(reference.tolist(), current.tolist())
    assert close(result.statistic, statistic)
    assert math.isclose(result.p_value, p_value, rel_tol=1e-4)
    assert result.drift is True and p_value < 1e-5


def test_chi_squared_matches_the_closed_form():
    reference = np.array([1] * 40 + [2] * 100 + [3] * 126, float)
    current = np.array([1] * 30 + [2] * 90 + [3] * 80, float)
    result = feature_drift("island", reference, current)
    statistic, p_value = chi2_gof([30, 90, 80], [40, 100, 126])
    assert result.test == "chi2"
    assert close(result.statistic, statistic)
    assert close(result.p_value, p_value)
    assert result.drift is (p_value <= 0.05)


def test_chi_squared_with_four_values_uses_three_degrees_of_freedom():
    reference = np.array([2007] * 90 + [2008] * 90 + [2009] * 86 + [2010] * 10, float)
    current = np.array([2007] * 20 + [2008] * 25 + [2009] * 30 + [2010] * 25, float)
    result = feature_drift("year", reference, current)
    statistic, p_value = chi2_gof([20, 25, 30, 25], [90, 90, 86, 10])
    assert close(result.statistic, statistic)
    assert close(result.p_value, p_value)
    assert result.drift is True


def test_a_value_the_reference_never_had_is_drift_with_p_zero():
    reference = np.array([2007] * 90 + [2008] * 90 + [2009] * 86, float)
    current = np.array([2009] * 20 + [2025] * 20, float)
    result = feature_drift("year", reference, current)
    assert (result.test, result.statistic, result.p_value, result.drift) == ("chi2", None, 0.0, True)


def test_binary_column_uses_the_two_proportion_z_test():
    reference = np.array([0] * 130 + [1] * 136, float)
    current = np.array([0] * 180 + [1] * 120, float)
    result = feature_drift("sex", reference, current)
    # Evidently compares the share of rows not holding the smallest value (here: male).
    z, p_value = z_two_proportions(136, 266, 120, 300)
    assert result.test == "z"
    assert close(result.statistic, z)
    assert close(result.p_value, p_value)
    assert result.drift is (p_value <= 0.05)


def test_one_value_in_both_samples_never_drifts():
    result = feature_drift("year", np.full(50, 2007.0), np.full(40, 2007.0))
    assert (result.test, result.p_value, result.drift) == ("z", 1.0, False)


def test_an_empty_window_is_refused():
    with pytest.raises(ValueError, match="year"):
        feature_drift("year", np.array([2007.0]), np.array([]))


# ---- dataset drift -------------------------------------------------------------------------


def _columns(count: int, drifted: int, rng) -> tuple[np.ndarray, np.ndarray]:
    reference = rng.normal(0, 1, (200, count)).round(2)
    current = rng.normal(0, 1, (200, count)).round(2)
    current[:, :drifted] += 3
    return reference, current


@pytest.mark.parametrize(("count", "drifted", "expected"), [(7, 3, False), (7, 4, True), (4, 2, True), (4, 1, False)])
def test_dataset_drifts_when_at_least_half_of_the_features_drift(count, drifted, expected):
    reference, current = _columns(count, drifted, np.random.default_rng(3))
    names = [f"f{index}" for index in range(count)]
    result = dataset_drift(names, reference, current)
    assert result.drifted_names == names[:drifted]
    assert result.share == drifted / count
    assert result.dataset_drift is expected


# ---- prediction drift ----------------------------------------------------------------------


def test_prediction_drift_is_chi_squared_goodness_of_fit_against_the_reference_mix():
    reference = {1: 117, 2: 54, 3: 95}
    predicted = np.array([1] * 130 + [2] * 55 + [3] * 115)
    result = prediction_drift(predicted, reference)
    statistic, p_value = chi2_gof([130, 55, 115], [117, 54, 95])
    assert result.test == "chi2"
    assert close(result.statistic, statistic)
    assert close(result.p_value, p_value)
    assert result.drift is (p_value <= 0.05)
    assert result.current == {1: 130 / 300, 2: 55 / 300, 3: 115 / 300}
    assert result.reference == {1: 117 / 266, 2: 54 / 266, 3: 95 / 266}


def test_one_species_only_is_prediction_drift():
    reference = {1: 117, 2: 54, 3: 95}
    result = prediction_drift(np.full(300, 3), reference)
    statistic, p_value = chi2_gof([0, 0, 300], [117, 54, 95])
    assert close(result.statistic, statistic)
    assert close(result.p_value, p_value)
    assert result.drift is True
    assert result.as_dict({1: "Adelie", 2: "Chinstrap", 3: "Gentoo"})["current"] == {
        "Adelie": 0.0,
        "Chinstrap": 0.0,
        "Gentoo": 1.0,
    }


# ---- live accuracy and latency -------------------------------------------------------------


def test_wilson_interval_for_90_of_100():
    low, high = wilson_interval(90, 100)
    assert (round(low, 4), round(high, 4)) == (0.8256, 0.9448)
    expected = wilson(90, 100)
    assert close(low, expected[0]) and close(high, expected[1])


@pytest.mark.parametrize(("correct", "total"), [(0, 10), (10, 10), (1, 1), (37, 52), (999, 1000)])
def test_wilson_interval_matches_the_formula_and_stays_in_zero_one(correct, total):
    low, high = wilson_interval(correct, total)
    expected = wilson(correct, total)
    assert math.isclose(low, max(0.0, expected[0]), abs_tol=1e-12)
    assert math.isclose(high, min(1.0, expected[1]), abs_tol=1e-12)
    assert 0 <= low <= correct / total <= high <= 1


def test_live_accuracy_counts_labelled_rows_only_with_recall_per_species():
    predicted = np.array([1] * 50 + [2] * 30 + [3] * 20 + [1] * 200)
    actual = np.array([1] * 45 + [2] * 5 + [2] * 30 + [3] * 15 + [1] * 5 + [0] * 200)
    result = live_accuracy(predicted, actual, classes=[1, 2, 3])
    assert (result.labelled, result.correct, result.accuracy) == (100, 90, 0.9)
    assert (round(result.ci_low, 4), round(result.ci_high, 4)) == (0.8256, 0.9448)
    assert result.recall == {
        1: {"labelled": 50, "correct": 45, "recall": 0.9},
        2: {"labelled": 35, "correct": 30, "recall": 30 / 35},
        3: {"labelled": 15, "correct": 15, "recall": 1.0},
    }


def test_no_labels_means_no_accuracy_and_says_why():
    result = live_accuracy(np.array([1, 2, 3]), np.array([0, 0, 0]), classes=[1, 2, 3])
    assert (result.labelled, result.accuracy, result.ci_low, result.ci_high) == (0, None, None, None)
    assert "feedback" in result.reason
    assert result.recall[1] == {"labelled": 0, "correct": 0, "recall": None}


def test_latency_percentiles_interpolate_between_order_statistics():
    values = np.random.default_rng(5).gamma(2.0, 0.6, 997).round(3)
    result = latency_percentiles(values)
    assert close(result["p50"], percentile(values.tolist(), 50))
    assert close(result["p95"], percentile(values.tolist(), 95))
    assert latency_percentiles(np.array([])) == {"p50": None, "p95": None}


# ---- false alarms --------------------------------------------------------------------------


def test_windows_resampled_from_the_dataset_rarely_raise_dataset_drift():
    from sklearn.model_selection import train_test_split

    from core.datasets import dataset_load
    from core.encoding import FIELDS

    from .conftest import DATA

    dataset = dataset_load(DATA)
    features, target = dataset.features(), dataset.target()
    reference = train_test_split(features, target, test_size=0.2, stratify=target, random_state=42)[0]
    rng = np.random.default_rng(2026)
    alarms = sum(
        dataset_drift(FIELDS, reference, features[rng.integers(0, len(features), 300)]).dataset_drift for _ in range(50)
    )
    assert alarms <= 5


def test_a_species_the_reference_lacks_is_prediction_drift_when_predicted():
    result = prediction_drift(np.array([1] * 50 + [3] * 50), {1: 150, 2: 116, 3: 0})
    assert (result.statistic, result.p_value, result.drift) == (None, 0.0, True)
    quiet = prediction_drift(np.array([1] * 50 + [2] * 40), {1: 150, 2: 116, 3: 0})
    statistic, p_value = chi2_gof([50, 40], [150, 116])
    assert close(quiet.statistic, statistic) and close(quiet.p_value, p_value)
