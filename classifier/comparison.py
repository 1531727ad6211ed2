"""Two models answering the same rows: who was right where, and is the difference real?

The exact McNemar test looks only at the *discordant* rows, those exactly one of the two
models got right. If the models were equally good, each such row would be a fair coin
flip between them, so the p-value is the two-sided binomial test of ``first_only`` out of
``first_only + second_only`` with p = 0.5. Rows both got right (or both wrong) say nothing
about which is better and do not enter the test.

Pure computation, no database: the promotion gate and the challenger's statistics both
call ``paired_compare``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from scipy.stats import binomtest

TEST_NAME = "mcnemar-exact"
ALPHA = 0.05  # a difference is significant when p <= ALPHA
MIN_ROWS = 30  # fewer paired rows than this: "not comparable" / "not enough labels"


@dataclass(frozen=True)
class PairedComparison:
    rows: int
    first_correct: int
    second_correct: int
    first_only: int  # rows only the first model got right
    second_only: int  # rows only the second model got right
    p_value: float

    @property
    def discordant(self) -> int:
        return self.first_only + self.second_only

    @property
    def significant(self) -> bool:
        return self.discordant > 0 and self.p_value <= ALPHA

    @property
    def first_significantly_better(self) -> bool:
        return self.significant and self.first_only > self.second_only

    @property
    def second_significantly_better(self) -> bool:
        return self.significant and self.second_only > self.first_only

    def as_dict(self) -> dict:
        return asdict(self)


def mcnemar_exact_p(first_only: int, second_only: int) -> float:
    """Two-sided exact McNemar p-value; 1.0 when no row is discordant."""
    discordant = first_only + second_only
    if discordant == 0:
        return 1.0
    return float(binomtest(first_only, discordant, 0.5, alternative="two-sided").pvalue)


def paired_compare(*, truth: Sequence[int], first: Sequence[int], second: Sequence[int]) -> PairedComparison:
    """Count right answers of two models on the same rows and test the difference."""
    if not len(truth) == len(first) == len(second):
        raise ValueError(f"paired rows differ in length: {len(truth)}, {len(first)}, {len(second)}")
    first_right = [int(a) == int(t) for a, t in zip(first, truth, strict=True)]
    second_right = [int(b) == int(t) for b, t in zip(second, truth, strict=True)]
    first_only = sum(a and not b for a, b in zip(first_right, second_right, strict=True))
    second_only = sum(b and not a for a, b in zip(first_right, second_right, strict=True))
    return PairedComparison(
        rows=len(truth),
        first_correct=sum(first_right),
        second_correct=sum(second_right),
        first_only=first_only,
        second_only=second_only,
        p_value=mcnemar_exact_p(first_only, second_only),
    )
