"""Faults against the live service: gunicorn on a private PostgreSQL, 8 clients at once.

The database is restarted under load, its sessions are ended under load, and a model is
retrained and activated twice under load. What the clients saw is checked against the rows PostgreSQL holds afterwards.
"""

from __future__ import annotations

import time

import pytest

from tests.support.data import ADELIE
from tests.support.http import Answer, Clients, http
from tests.support.processes import wait_for
from tests.support.service import Stack

pytestmark = pytest.mark.slow

CLIENTS = 8


def classify_or_predict(stack: Stack, model: str):
    """Even clients use the compatible endpoint, odd ones API v1 predict."""

    def send(index: int) -> Answer:
        if index % 2:
            return http("POST", f"{stack.url}/api/v1/models/{model}/predict", ADELIE)
        return http("POST", f"{stack.url}/classify/{model}", ADELIE)

    return send


def answered(answer: Answer) -> tuple[int, int]:
    """(prediction id, version number) named by a 200 answer; both endpoints say both."""
    if "version" in answer.json():
        body = answer.json()
        assert answer.headers["x-model-version"] == str(body["version"])
        return body["predictions"][0]["prediction_id"], body["version"]
    return int(answer.headers["x-prediction-id"]), int(answer.headers["x-model-version"])


def logged_versions(stack: Stack, prediction_ids: list[int]) -> dict[int, int]:
    """Prediction id → the number of the version its row records."""
    rows = stack.pg.query(
        "SELECT p.id, v.number FROM classifier_prediction p "
        "JOIN classifier_modelversion v ON v.id = p.version_id WHERE p.id = ANY(%s)",
        (prediction_ids,),
    )
    return dict(rows)


def ok_after(clients: Clients, moment: float) -> int:
    return sum(1 for answer in clients.snapshot() if answer.status == 200 and answer.started > moment)


def test_postgres_restart_under_load_answers_json_503_then_recovers_and_every_200_is_logged(live_stack):
    stack = live_stack
    with Clients(CLIENTS, classify_or_predict(stack, "knn")) as clients:
        wait_for(lambda: ok_after(clients, 0) >= 4 * CLIENTS, timeout=60, what="the clients to be answered")

        stack.pg.stop("fast")  # every open session is cut, as in a restart or failover
        down = time.monotonic()
        # Keep it down until every client has been refused a couple of times (about 2 s).
        wait_for(
            lambda: sum(1 for a in clients.snapshot() if a.started > down and a.status != 200) >= 2 * CLIENTS,
            timeout=30,
            what="the clients to be refused while PostgreSQL is down",
        )
        stack.pg.start()
        up = time.monotonic()
        wait_for(lambda: ok_after(clients, up) >= 4 * CLIENTS, timeout=60, what="service to resume by itself")

    answers = clients.snapshot()
    refused = [answer for answer in answers if answer.status != 200]
    assert refused, "the outage was not seen by any client"
    for answer in refused:
        assert answer.status == 503, (answer.status, answer.error, answer.body[:300])
        assert answer.content_type == "application/json", answer.body[:300]
        assert answer.json()["code"] == "database_unavailable"
        assert answer.headers.get("retry-after") == "5"

    served = [answered(answer) for answer in answers if answer.status == 200]
    prediction_ids = [prediction_id for prediction_id, _ in served]
    assert len(set(prediction_ids)) == len(prediction_ids)
    logged = logged_versions(stack, prediction_ids)
    missing = sorted(set(prediction_ids) - set(logged))
    assert not missing, f"{len(missing)} answers of {len(served)} have no Prediction row: {missing[:10]}"


def test_sessions_the_database_ends_are_replaced_without_failing_a_request(live_stack):
    stack = live_stack
    with Clients(CLIENTS, classify_or_predict(stack, "knn")) as clients:
        wait_for(lambda: ok_after(clients, 0) >= 4 * CLIENTS, timeout=60, what="the clients to be answered")
        # Every worker's session ended by the server (pg_terminate_backend, as an
        # idle-session timeout or an administrator would), PostgreSQL itself staying up.
        ended = stack.pg.query(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        pids = [pid for (pid,) in ended]
        stack.pg.query("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        # Gone from the server, so each has sent its goodbye and closed its socket.
        wait_for(
            lambda: not stack.pg.query("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)),
            timeout=10,
            what="the sessions to end",
        )
        cut = time.monotonic()
        wait_for(lambda: ok_after(clients, cut) >= 20 * CLIENTS, timeout=60, what="answers after the cut")

    assert len(ended) >= 2  # one per worker process, each serving one request at a time
    after = [answer for answer in clients.snapshot() if answer.started > cut]
    failed = [(answer.status, answer.body[:200]) for answer in after if answer.status != 200]
    assert not failed, f"{len(failed)} of {len(after)} requests failed after the sessions ended: {failed[:5]}"


def test_retraining_twice_under_load_serves_every_request_with_a_version_that_exists(live_stack):
    stack = live_stack
    model = "knn-under-load"
    stack.manage("train_model", "knn", "--name", model)
    wait_for(
        lambda: http("POST", f"{stack.url}/classify/{model}", ADELIE).status == 200,
        timeout=30,
        what=f"{model} v1 to serve",
    )

    with Clients(CLIENTS, classify_or_predict(stack, model)) as clients:
        for number, k in ((2, 7), (3, 9)):
            wait_for(lambda: ok_after(clients, 0) >= 4 * CLIENTS, timeout=60, what="the clients to be answered")
            stack.manage("train_model", "knn", "--name", model, "--param", f"n_neighbors={k}", "--force-activate")
            trained = time.monotonic()
            # Every serving process picks the new version up within its refresh interval.
            wait_for(
                lambda number=number, trained=trained: (
                    sum(
                        1
                        for answer in clients.snapshot()
                        if answer.started > trained and answer.status == 200 and answered(answer)[1] == number
                    )
                    >= 2 * CLIENTS
                ),
                timeout=30,
                what=f"answers from v{number}",
            )

    answers = clients.snapshot()
    errors = [(answer.status, answer.error, answer.body[:200]) for answer in answers if answer.status != 200]
    assert not errors, f"{len(errors)} of {len(answers)} requests failed: {errors[:5]}"
    served = [answered(answer) for answer in answers]
    assert {number for _, number in served} <= {1, 2, 3}
    logged = logged_versions(stack, [prediction_id for prediction_id, _ in served])
    wrong = [(pid, number, logged.get(pid)) for pid, number in served if logged.get(pid) != number]
    assert not wrong, f"answers whose row is missing or names another version: {wrong[:10]}"
    versions = stack.pg.query(
        "SELECT v.number FROM classifier_modelversion v JOIN classifier_mlmodel m ON m.id = v.model_id "
        "WHERE m.name = %s AND v.broken_reason = '' ORDER BY v.number",
        (model,),
    )
    assert [number for (number,) in versions] == [1, 2, 3]
