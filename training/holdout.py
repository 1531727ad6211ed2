"""The fair holdout: which rows a version is tested on, decided by the data and a split seed.

A row is known by its *key*, a short hash of its species and seven inputs, so the same
penguin has the same key whichever file or row order it came from. The split depends only
on the set of keys (the dataset's fingerprint), the split seed and the test size:

- two versions trained on the same rows with the same split seed share their holdout,
  whatever the estimator's seed, so they can be compared row by row;
- the estimator's seed never moves the split; ``split_seed`` does.

Each version records the keys of its training and test rows, so a later candidate can be
scored against it on rows that neither of them trained on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

DEFAULT_SPLIT_SEED = 42
KEY_LENGTH = 16  # hex characters of sha256: 64 bits, no collision among a few thousand penguins


def row_keys(features: np.ndarray, target: np.ndarray) -> list[str]:
    """One key per row: a hash of the species id and the seven inputs (as numbers)."""
    keys = []
    for values, species in zip(features, target, strict=True):
        text = f"{int(species)}|" + "|".join(repr(float(value)) for value in values)
        keys.append(hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH])
    return keys


def dataset_fingerprint(keys: list[str]) -> str:
    """A hash of the set of rows: the same rows in any order give the same fingerprint."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()


@dataclass(frozen=True)
class Holdout:
    """A split of a dataset: row indices into it, the rows' keys and how it was decided."""

    train_index: np.ndarray
    test_index: np.ndarray
    train_keys: list[str]
    test_keys: list[str]
    fingerprint: str
    split_seed: int
    test_size: float

    def record(self) -> dict:
        """What a version stores about its split (JSON)."""
        return {
            "split_seed": self.split_seed,
            "test_size": self.test_size,
            "fingerprint": self.fingerprint,
            "train_rows": len(self.train_keys),
            "test_rows": len(self.test_keys),
            "train_keys": sorted(self.train_keys),
            "test_keys": sorted(self.test_keys),
        }


def holdout_split(*, features: np.ndarray, target: np.ndarray, test_size: float, split_seed: int) -> Holdout:
    """A stratified split decided by the rows themselves, ``split_seed`` and ``test_size``.

    The rows are put in key order before splitting, and the random state is derived from
    the dataset fingerprint and the split seed, so reordering the file changes nothing and
    another dataset gets its own, independent split.
    """
    keys = row_keys(features, target)
    fingerprint = dataset_fingerprint(keys)
    order = np.argsort(np.array(keys), kind="stable")
    random_state = int(hashlib.sha256(f"{fingerprint}:{split_seed}".encode()).hexdigest()[:8], 16)
    train_index, test_index = train_test_split(
        order, test_size=test_size, stratify=target[order], random_state=random_state
    )
    train_index, test_index = np.sort(train_index), np.sort(test_index)
    return Holdout(
        train_index=train_index,
        test_index=test_index,
        train_keys=[keys[i] for i in train_index],
        test_keys=[keys[i] for i in test_index],
        fingerprint=fingerprint,
        split_seed=split_seed,
        test_size=test_size,
    )
