"""A Celery worker killed with SIGKILL in the middle of a training run.

The worker consumes its own queue of the session's private Redis and shares the live
stack's private PostgreSQL, so the web server there shows what a client would see. The
redelivery and attempt-cap logic is unit-tested in test_training_runs.py; here a real
worker process dies.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.data import ADELIE
from tests.support.http import http
from tests.support.processes import children_of, wait_for
from tests.support.service import Stack, celery_worker, manage

pytestmark = pytest.mark.slow

SLOW_FOREST = ("randomforest", "--param", "n_estimators=5000", "--param", "max_depth=none")


def worker_env(stack: Stack, **overrides: str) -> dict[str, str]:
    return {**stack.env, "CELERY_TASK_DEFAULT_QUEUE": "faults-worker", **overrides}


def queue(env: dict[str, str], *args: str) -> int:
    """``train_model ... --async``; the id of the queued run."""
    output = manage(env, "train_model", *args, "--async").stdout
    assert output.startswith("queued run "), output
    return int(output.split()[2])


def run_state(stack: Stack, run_id: int) -> tuple[str, int, str]:
    ((status, attempts, error),) = stack.pg.query(
        "SELECT status, attempts, error FROM training_trainingrun WHERE id = %s", (run_id,)
    )
    return status, attempts, error


def wait_for_status(stack: Stack, run_id: int, statuses: set[str], timeout: float = 120) -> tuple[str, int, str]:
    return wait_for(
        lambda: (state := run_state(stack, run_id))[0] in statuses and state,
        timeout=timeout,
        what=f"run {run_id} to be {' or '.join(sorted(statuses))}",
        interval=0.1,
    )


def versions_of(stack: Stack, model: str) -> list[int]:
    rows = stack.pg.query(
        "SELECT v.number FROM classifier_modelversion v JOIN classifier_mlmodel m ON m.id = v.model_id "
        "WHERE m.name = %s",
        (model,),
    )
    return [number for (number,) in rows]


def assert_nothing_registered_or_served(stack: Stack, model: str) -> None:
    assert versions_of(stack, model) == []
    assert not list((stack.folder / "artifacts" / "registry" / model).glob("v*/model.*"))
    listed = http("GET", f"{stack.url}/models").json()["available_models"]
    assert model not in {entry["name"] for entry in listed}
    assert http("POST", f"{stack.url}/classify/{model}", ADELIE).status == 404


def assert_next_run_succeeds_and_serves(stack: Stack, env: dict[str, str], model: str) -> None:
    run_id = queue(env, "knn", "--name", model)
    status, _, error = wait_for_status(stack, run_id, {"succeeded", "failed"})
    assert status == "succeeded", error
    answer = wait_for(
        lambda: (answer := http("POST", f"{stack.url}/classify/{model}", ADELIE)).status == 200 and answer,
        timeout=30,
        what=f"{model} to serve",
    )
    assert answer.json()["species_name"] == "Adelie"


def test_a_worker_child_killed_mid_training_fails_the_run_registers_nothing_and_the_next_run_succeeds(
    live_stack, tmp_path
):
    stack = live_stack
    # One attempt: the redelivered message finds the run already tried and fails it at once
    # (with the default of 3 it would train the slow forest again).
    env = worker_env(stack, PENGUIN_TRAINING_MAX_ATTEMPTS="1")
    with celery_worker(env, log=tmp_path / "worker.log") as worker:
        run_id = queue(env, *SLOW_FOREST, "--name", "rf-killed")
        wait_for_status(stack, run_id, {"running"}, timeout=60)
        (child,) = children_of(worker.pid)
        os.kill(child, signal.SIGKILL)

        status, attempts, error = wait_for_status(stack, run_id, {"succeeded", "failed"})
        assert status == "failed"
        assert attempts == 1
        assert "the worker stopped 1 times while training this run" in error
        assert "PENGUIN_TRAINING_MAX_ATTEMPTS=1" in error
        assert_nothing_registered_or_served(stack, "rf-killed")

        assert worker.poll() is None, "the worker itself survives the loss of its child"
        assert_next_run_succeeds_and_serves(stack, env, "knn-after-child-kill")


def test_a_whole_worker_killed_mid_training_is_recovered_by_the_sweep_and_the_next_run_succeeds(live_stack, tmp_path):
    stack = live_stack
    env = worker_env(stack)
    with celery_worker(env, log=tmp_path / "worker-1.log") as worker:
        run_id = queue(env, *SLOW_FOREST, "--name", "rf-worker-killed")
        wait_for_status(stack, run_id, {"running"}, timeout=60)
        os.killpg(worker.pid, signal.SIGKILL)  # the main process and its child: nothing acks or requeues
        worker.wait(timeout=10)
    assert run_state(stack, run_id)[0] == "running"

    # The operator's command fails it without waiting for the hard time limit (a restarted
    # worker of the same name does it by itself: see the next test).
    output = manage(env, "recover_training_runs", "--older-than", "0").stdout
    assert f"recorded 1 run(s) as failed: {run_id}" in output
    status, _, error = run_state(stack, run_id)
    assert status == "failed"
    assert "the worker stopped before the run finished" in error
    assert_nothing_registered_or_served(stack, "rf-worker-killed")
    with celery_worker(env, log=tmp_path / "worker-2.log"):
        assert_next_run_succeeds_and_serves(stack, env, "knn-after-worker-kill")


def test_a_worker_started_after_the_whole_worker_was_killed_fails_its_run_at_once(live_stack, tmp_path):
    """No waiting for the time limit: a worker of the same name starting means the old one is gone."""
    stack = live_stack
    env = worker_env(stack)
    node = "restarted@%h"
    with celery_worker(env, log=tmp_path / "worker-1.log", node=node) as worker:
        run_id = queue(env, *SLOW_FOREST, "--name", "rf-restarted")
        wait_for_status(stack, run_id, {"running"}, timeout=60)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

    with celery_worker(env, log=tmp_path / "worker-2.log", node=node):
        # Far less than the hard time limit (660 s): the sweep at start takes it.
        status, _, error = wait_for_status(stack, run_id, {"failed", "succeeded"}, timeout=30)
        assert status == "failed"
        assert "the worker stopped before the run finished" in error
        assert_nothing_registered_or_served(stack, "rf-restarted")
        # The model is free again: the next run for it is accepted and trains.
        assert_next_run_succeeds_and_serves(stack, env, "rf-restarted")
