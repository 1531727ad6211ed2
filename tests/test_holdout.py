"""The fair holdout: the data and the split seed decide the test rows, the estimator's seed does not."""

from __future__ import annotations

import numpy as np
import pytest

from core.datasets import dataset_load
from tests.support.data import DATA, DATA_V1
from training.holdout import holdout_split, row_keys
from training.models import TrainingRun
from training.start import training_run_start
from training.trainer import train


def split(dataset, split_seed=42, test_size=0.2):
    return holdout_split(
        features=dataset.features(), target=dataset.target(), test_size=test_size, split_seed=split_seed
    )


def test_the_estimator_seed_does_not_move_the_test_rows():
    dataset = dataset_load(DATA)
    first = train(algorithm="randomforest", dataset=dataset, seed=1)
    second = train(algorithm="randomforest", dataset=dataset, seed=2)
    assert first.holdout.test_keys == second.holdout.test_keys
    assert first.estimator_params["random_state"] == 1 and second.estimator_params["random_state"] == 2


def test_the_split_seed_moves_the_test_rows_and_keeps_them_stratified():
    dataset = dataset_load(DATA)
    first, other = split(dataset, 42), split(dataset, 7)
    assert set(first.test_keys) != set(other.test_keys)
    assert len(first.test_keys) == len(other.test_keys) == 67
    target = dataset.target()
    assert np.bincount(target[first.test_index]).tolist() == np.bincount(target[other.test_index]).tolist()


def test_the_same_rows_in_another_file_or_order_give_the_same_holdout():
    names, codes = dataset_load(DATA), dataset_load(DATA_V1)
    assert set(split(names).test_keys) == set(split(codes).test_keys)
    shuffled = np.random.default_rng(0).permutation(names.rows_used)
    moved = holdout_split(
        features=names.features()[shuffled], target=names.target()[shuffled], test_size=0.2, split_seed=42
    )
    assert set(moved.test_keys) == set(split(names).test_keys)
    assert moved.fingerprint == split(names).fingerprint


def test_training_and_test_rows_do_not_overlap_and_cover_the_data():
    dataset = dataset_load(DATA)
    holdout = split(dataset)
    assert not set(holdout.train_index) & set(holdout.test_index)
    assert len(holdout.train_index) + len(holdout.test_index) == dataset.rows_used
    keys = row_keys(dataset.features(), dataset.target())
    assert [keys[i] for i in holdout.test_index] == holdout.test_keys


@pytest.mark.django_db
def test_the_version_records_its_split_and_its_rows():
    run = training_run_start(algorithm="knn", seed=3, split_seed=9)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    version = run.version
    assert (run.seed, run.split_seed) == (3, 9)
    assert version.dataset["split_seed"] == 9 and version.dataset["seed"] == 3
    holdout = version.holdout
    assert holdout["split_seed"] == 9 and holdout["test_rows"] == version.n_test == len(holdout["test_keys"])
    assert holdout["train_rows"] == version.n_train == len(holdout["train_keys"])
    expected = split(dataset_load(DATA), split_seed=9)
    assert holdout["test_keys"] == sorted(expected.test_keys)
    assert holdout["fingerprint"] == expected.fingerprint == version.dataset["fingerprint"]


@pytest.mark.django_db
def test_retraining_keeps_the_split_seed_of_the_last_run():
    from training.start import training_run_retrain

    training_run_start(algorithm="knn", split_seed=11)
    again = training_run_retrain(model_name="knn", trigger=TrainingRun.Trigger.COMMAND, in_process=True)
    assert again.split_seed == 11
    assert again.version.holdout["test_keys"] == again.version.model.versions.get(number=1).holdout["test_keys"]
