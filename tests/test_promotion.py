"""The promotion gate on registration: candidate and champion scored on the same rows, by policy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from classifier.models import MLModel, ModelVersion
from classifier.selectors import serving_entry
from classifier.serving import load_entry
from core.datasets import dataset_load
from tests.support.data import DATA
from training.holdout import holdout_split
from training.models import TrainingRun
from training.start import training_run_start

pytestmark = pytest.mark.django_db

WEAK = {"C": 0.001}  # logistic regression this strongly regularised gets about 0.79 of the test rows right


def train(algorithm="logisticregression", **kwargs) -> TrainingRun:
    run = training_run_start(algorithm=algorithm, **kwargs)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    return run


def active(name="logisticregression") -> ModelVersion:
    return MLModel.objects.get(name=name).active_version


def answers(version: ModelVersion, features: np.ndarray) -> np.ndarray:
    return load_entry(serving_entry(version)).predict(features)


def test_the_first_version_has_no_champion_to_face():
    run = train()
    assert run.activated and run.activation_note == "activated: no serving version before it"
    assert run.version.evaluation == {}


def test_the_evaluation_counts_both_versions_answers_on_the_shared_holdout():
    champion = train(params=WEAK, activation="force").version
    candidate = train().version
    dataset = dataset_load(DATA)
    holdout = holdout_split(features=dataset.features(), target=dataset.target(), test_size=0.2, split_seed=42)
    x, truth = dataset.features()[holdout.test_index], dataset.target()[holdout.test_index]
    candidate_right = answers(candidate, x) == truth
    champion_right = answers(champion, x) == truth
    b, c = int((candidate_right & ~champion_right).sum()), int((champion_right & ~candidate_right).sum())
    evaluation = candidate.evaluation
    assert evaluation["against_version"] == champion.number and evaluation["rows"] == len(truth) == 67
    assert evaluation["candidate_correct"] == candidate_right.sum()
    assert evaluation["champion_correct"] == champion_right.sum()
    assert (evaluation["candidate_only"], evaluation["champion_only"]) == (b, c)
    assert evaluation["test"] == "mcnemar-exact"
    assert evaluation["p_value"] == pytest.approx(binomtest(b, b + c, 0.5).pvalue)
    assert evaluation["rows_basis"] == "the holdout both share"
    assert evaluation["decision"] == "activated" and active() == candidate


def test_not_worse_keeps_the_champion_when_the_candidate_is_significantly_worse():
    champion = train().version
    run = train(params=WEAK)
    evaluation = run.version.evaluation
    assert evaluation["p_value"] <= 0.05 and evaluation["champion_only"] > evaluation["candidate_only"]
    assert (evaluation["decision"], run.activated) == ("kept champion", False)
    assert run.activation_note == evaluation["reason"] == run.version.activation_note
    assert active() == champion and run.version.status == "inactive"


def test_better_needs_a_significant_improvement():
    train(params=WEAK)
    improved = train(activation="better")
    assert improved.activated and improved.version.evaluation["decision"] == "activated"
    same_again = train(params={"C": 2.0}, activation="better")
    assert not same_again.activated and same_again.version.evaluation["decision"] == "kept champion"
    assert "not significantly better" in same_again.activation_note
    assert active() == improved.version


def test_force_and_never_override_the_evidence_but_record_it():
    champion = train().version
    forced = train(params=WEAK, activation="force")
    assert forced.activated and forced.version.evaluation["p_value"] <= 0.05
    assert forced.version.evaluation["decision"] == "activated" and "by force" in forced.activation_note
    kept = train(params={"C": 2.0}, activation="never")
    assert not kept.activated and kept.version.evaluation["decision"] == "kept champion"
    assert kept.version.evaluation["against_version"] == forced.version.number != champion.number


def test_another_split_seed_leaves_too_few_rows_and_not_worse_falls_back_to_the_margin(settings):
    settings.PENGUIN_PROMOTION_MARGIN = 0.02
    train()
    run = train(params={"C": 2.0}, split_seed=7)
    evaluation = run.version.evaluation
    assert evaluation["rows"] < 30 and evaluation["decision"] == "not comparable"
    assert "did not train on" in evaluation["rows_basis"]
    assert "fell back to the margin rule" in run.activation_note and "PENGUIN_PROMOTION_MARGIN" in run.activation_note


def test_a_larger_test_share_with_another_split_seed_is_compared_on_the_intersection():
    champion = train().version
    run = train(params={"C": 2.0}, split_seed=7, test_size=0.5)
    evaluation = run.version.evaluation
    unseen = set(run.version.holdout["test_keys"]) - set(champion.holdout["train_keys"])
    assert evaluation["rows"] == len(unseen) >= 30
    assert evaluation["rows_basis"].startswith(f"the {len(unseen)} of the candidate's")


def test_a_champion_without_recorded_rows_is_scored_on_the_whole_holdout_and_the_evidence_says_so():
    champion = train(params=WEAK).version
    ModelVersion.objects.filter(pk=champion.pk).update(holdout={})
    run = train()
    evaluation = run.version.evaluation
    assert evaluation["rows"] == 67 and "training rows are unknown" in evaluation["rows_basis"]


def test_a_byte_identical_retrain_registers_nothing_and_names_the_version():
    first = train()
    again = train()
    assert again.status == TrainingRun.Status.SUCCEEDED and again.version == first.version
    assert again.activation_note.startswith(f"identical to v{first.version.number}")
    assert ModelVersion.objects.filter(model__name="logisticregression").count() == 1
