"""The promotion gate's arithmetic: counts and exact McNemar p-values against scipy, and the policies."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from classifier.comparison import paired_compare
from training.evaluation import MIN_ROWS, MarginRule, promotion_evaluate

RNG = np.random.default_rng(12)


def rows(*, both: int, candidate_only: int, champion_only: int, neither: int = 0):
    """Truth and two answer columns with exactly these counts (species ids 1..3)."""
    truth, candidate, champion = [], [], []
    for count, cand_right, champ_right in (
        (both, True, True),
        (candidate_only, True, False),
        (champion_only, False, True),
        (neither, False, False),
    ):
        for _ in range(count):
            species = int(RNG.integers(1, 4))
            wrong = species % 3 + 1
            truth.append(species)
            candidate.append(species if cand_right else wrong)
            champion.append(species if champ_right else wrong)
    return truth, candidate, champion


def evaluate(policy, counts, *, f1=(0.97, 0.98), margin=0.02):
    truth, candidate, champion = rows(**counts)
    return promotion_evaluate(
        policy=policy,
        truth=truth,
        candidate=candidate,
        champion=champion,
        against_version=1,
        rows_basis="shared holdout",
        margin_rule=MarginRule(candidate_f1=f1[0], champion_f1=f1[1], margin=margin),
    )


@pytest.mark.parametrize("seed", range(6))
def test_counts_and_p_value_equal_scipys_on_the_same_rows(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 4, size=67)
    first = np.where(rng.random(67) < 0.9, truth, truth % 3 + 1)
    second = np.where(rng.random(67) < 0.8, truth, truth % 3 + 1)
    result = paired_compare(truth=truth, first=first, second=second)
    first_right, second_right = first == truth, second == truth
    b = int((first_right & ~second_right).sum())
    c = int((second_right & ~first_right).sum())
    assert (result.rows, result.first_correct, result.second_correct) == (67, first_right.sum(), second_right.sum())
    assert (result.first_only, result.second_only) == (b, c)
    expected = binomtest(b, b + c, 0.5, alternative="two-sided").pvalue if b + c else 1.0
    assert result.p_value == pytest.approx(expected, rel=1e-12)


def test_no_discordant_row_gives_p_1():
    assert paired_compare(truth=[1, 2, 3], first=[1, 2, 1], second=[1, 2, 1]).p_value == 1.0


def test_evaluation_has_the_documented_shape():
    evaluation = evaluate("not_worse", {"both": 64, "candidate_only": 2, "champion_only": 1})
    assert {
        key: evaluation[key]
        for key in ("against_version", "rows", "candidate_correct", "champion_correct", "candidate_only")
    } == {"against_version": 1, "rows": 67, "candidate_correct": 66, "champion_correct": 65, "candidate_only": 2}
    assert evaluation["champion_only"] == 1 and evaluation["test"] == "mcnemar-exact"
    assert evaluation["p_value"] == pytest.approx(binomtest(2, 3, 0.5).pvalue)
    assert evaluation["decision"] == "activated" and evaluation["activated"] is True
    assert "not significantly worse" in evaluation["reason"]


def test_not_worse_keeps_the_champion_when_the_candidate_is_significantly_worse():
    evaluation = evaluate("not_worse", {"both": 55, "candidate_only": 0, "champion_only": 8, "neither": 4})
    assert evaluation["p_value"] == pytest.approx(binomtest(0, 8, 0.5).pvalue) and evaluation["p_value"] <= 0.05
    assert (evaluation["decision"], evaluation["activated"]) == ("kept champion", False)
    assert "significantly worse" in evaluation["reason"]


def test_not_worse_activates_a_candidate_that_is_worse_but_not_significantly():
    evaluation = evaluate("not_worse", {"both": 60, "candidate_only": 1, "champion_only": 3})
    assert evaluation["p_value"] > 0.05
    assert evaluation["decision"] == "activated"


def test_better_activates_only_a_significantly_better_candidate():
    better = evaluate("better", {"both": 55, "candidate_only": 9, "champion_only": 1})
    assert better["p_value"] == pytest.approx(binomtest(9, 10, 0.5).pvalue) and better["p_value"] <= 0.05
    assert better["decision"] == "activated"
    slightly = evaluate("better", {"both": 60, "candidate_only": 3, "champion_only": 1})
    assert (slightly["decision"], slightly["activated"]) == ("kept champion", False)
    assert "not significantly better" in slightly["reason"]
    worse = evaluate("better", {"both": 55, "candidate_only": 1, "champion_only": 9})
    assert worse["decision"] == "kept champion"


def test_force_activates_and_never_keeps_whatever_the_evidence():
    worse = {"both": 55, "candidate_only": 0, "champion_only": 10}
    forced = evaluate("force", worse)
    assert (forced["decision"], forced["activated"]) == ("activated", True) and forced["p_value"] <= 0.05
    better = {"both": 55, "candidate_only": 10, "champion_only": 0}
    kept = evaluate("never", better)
    assert (kept["decision"], kept["activated"]) == ("kept champion", False)
    assert "policy never" in kept["reason"]


def test_fewer_than_30_rows_are_not_comparable_and_not_worse_falls_back_to_the_margin():
    few = {"both": MIN_ROWS - 3, "candidate_only": 0, "champion_only": 2}
    within = evaluate("not_worse", few, f1=(0.97, 0.98))
    assert within["rows"] == MIN_ROWS - 1
    assert (within["decision"], within["activated"]) == ("not comparable", True)
    assert "fell back to the margin rule" in within["reason"] and "PENGUIN_PROMOTION_MARGIN" in within["reason"]
    beyond = evaluate("not_worse", few, f1=(0.90, 0.98))
    assert (beyond["decision"], beyond["activated"]) == ("not comparable", False)
    wider = evaluate("not_worse", few, f1=(0.90, 0.98), margin=0.1)
    assert wider["activated"] is True
    better = evaluate("better", few)
    assert (better["decision"], better["activated"]) == ("not comparable", False)


def test_exactly_30_rows_are_comparable():
    evaluation = evaluate("not_worse", {"both": MIN_ROWS, "candidate_only": 0, "champion_only": 0})
    assert evaluation["decision"] == "activated" and evaluation["rows"] == MIN_ROWS


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown policy"):
        evaluate("sometimes", {"both": 40, "candidate_only": 0, "champion_only": 0})
