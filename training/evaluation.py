"""The promotion gate's decision: candidate against champion on the same rows.

Pure computation: ``promotion_evaluate`` takes the true species of the comparable rows and
both models' answers on them, and returns the ``evaluation`` recorded on the candidate.
Choosing the rows and scoring the models is the caller's job (``training.services``).

Policies (``ActivationMode``):

- ``not_worse`` (default): activate unless the candidate is significantly worse
  (exact McNemar p <= 0.05 and the champion alone right on more rows);
- ``better``: activate only if the candidate is significantly better;
- ``force``: activate; ``never``: keep the champion (the evidence is recorded either way).

Below ``MIN_ROWS`` comparable rows the test cannot tell models apart: the decision is
"not comparable", and ``not_worse`` falls back to the margin rule on test F1
(PENGUIN_PROMOTION_MARGIN), saying so; ``better`` keeps the champion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from classifier.comparison import ALPHA, MIN_ROWS, TEST_NAME, paired_compare

from .models import ActivationMode

ACTIVATED = "activated"
KEPT = "kept champion"
NOT_COMPARABLE = "not comparable"


@dataclass(frozen=True)
class MarginRule:
    """The old rule, used only when too few rows can be compared."""

    candidate_f1: float | None
    champion_f1: float | None
    margin: float

    def allows(self) -> tuple[bool, str]:
        if self.candidate_f1 is None or self.champion_f1 is None:
            return True, "the champion has no test F1 to compare with, so the candidate is activated"
        verdict = self.candidate_f1 >= self.champion_f1 - self.margin
        relation = "within" if verdict else "worse than"
        return verdict, (
            f"test F1 {self.candidate_f1:.4f} against the champion's {self.champion_f1:.4f} is {relation} the margin "
            f"{self.margin:g} (PENGUIN_PROMOTION_MARGIN)"
        )


def promotion_evaluate(
    *,
    policy: str,
    truth: Sequence[int],
    candidate: Sequence[int],
    champion: Sequence[int],
    against_version: int,
    rows_basis: str,
    margin_rule: MarginRule,
) -> dict:
    """The evaluation recorded on a candidate version; ``activated`` says whether it replaces the champion.

    ``rows_basis`` says which rows were compared (shared holdout, intersection, or the
    candidate's holdout when the champion's training rows are unknown); it is kept in the
    evidence so a reader knows how fair the comparison was.
    """
    if policy not in ActivationMode.values:
        raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(ActivationMode.values)}")
    paired = paired_compare(truth=truth, first=candidate, second=champion)
    evidence = (
        f"on {paired.rows} rows ({rows_basis}) the candidate alone was right on {paired.first_only}, "
        f"v{against_version} alone on {paired.second_only}; McNemar exact p = {paired.p_value:.3g}"
    )
    comparable = paired.rows >= MIN_ROWS

    if policy == ActivationMode.FORCE:
        activated, reason = True, f"activated by force; {evidence}"
    elif policy == ActivationMode.NEVER:
        activated, reason = False, f"kept v{against_version}: policy never; {evidence}"
    elif not comparable:
        too_few = f"only {paired.rows} comparable rows (fewer than {MIN_ROWS}), too few for the test"
        if policy == ActivationMode.NOT_WORSE:
            activated, rule = margin_rule.allows()
            outcome = "activated" if activated else f"kept v{against_version}"
            reason = f"{outcome}: {too_few}, so not_worse fell back to the margin rule: {rule}"
        else:
            activated = False
            reason = f"kept v{against_version}: {too_few}; policy better needs a significant improvement"
    elif policy == ActivationMode.NOT_WORSE:
        activated = not paired.second_significantly_better
        if activated:
            reason = (
                f"activated: not significantly worse than v{against_version} (p > {ALPHA:g} or not behind); {evidence}"
            )
        else:
            reason = f"kept v{against_version}: the candidate is significantly worse (p <= {ALPHA:g}); {evidence}"
    else:  # better
        activated = paired.first_significantly_better
        if activated:
            reason = f"activated: significantly better than v{against_version} (p <= {ALPHA:g}); {evidence}"
        else:
            reason = f"kept v{against_version}: not significantly better (policy better); {evidence}"

    if not comparable:
        decision = NOT_COMPARABLE
    else:
        decision = ACTIVATED if activated else KEPT
    return {
        "against_version": against_version,
        "rows": paired.rows,
        "candidate_correct": paired.first_correct,
        "champion_correct": paired.second_correct,
        "candidate_only": paired.first_only,
        "champion_only": paired.second_only,
        "test": TEST_NAME,
        "p_value": paired.p_value,
        "decision": decision,
        "reason": reason,
        "policy": str(policy),
        "activated": activated,
        "rows_basis": rows_basis,
    }
