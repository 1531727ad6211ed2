"""A challenger set and cleared while 8 clients classify: no prediction lost, none answered by it.

Against the live service (gunicorn on a private PostgreSQL): what the clients saw is checked
against the rows PostgreSQL holds afterwards.
"""

from __future__ import annotations

import time

import pytest

from tests.support.data import ADELIE
from tests.support.http import Clients, http
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow

CLIENTS = 8
MODEL = "knn-shadowed"


def test_setting_and_clearing_a_challenger_under_load_loses_nothing_and_never_answers_with_it(live_stack):
    stack = live_stack
    stack.manage("train_model", "knn", "--name", MODEL)
    stack.manage("train_model", "knn", "--name", MODEL, "--param", "n_neighbors=40", "--activate", "never")
    url = f"{stack.url}/api/v1/models/{MODEL}/challenger"
    staff = {"Authorization": f"Token {stack.staff_token}"}
    wait_for(lambda: http("POST", f"{stack.url}/classify/{MODEL}", ADELIE).status == 200, timeout=30, what="v1")

    def send(index: int):
        if index % 2:
            return http("POST", f"{stack.url}/api/v1/models/{MODEL}/predict", {"instances": [ADELIE] * 3})
        return http("POST", f"{stack.url}/classify/{MODEL}", ADELIE)

    def answered_after(clients, moment: float) -> int:
        return sum(1 for answer in clients.snapshot() if answer.status == 200 and answer.started > moment)

    def shadowed_rows() -> int:
        sql = "SELECT count(*) FROM classifier_prediction WHERE challenger_version_id IS NOT NULL"
        return stack.pg.query(sql)[0][0]

    with Clients(CLIENTS, send) as clients:
        for _ in range(2):
            wait_for(lambda: answered_after(clients, 0) >= 4 * CLIENTS, timeout=60, what="answers")
            shadowed_before = shadowed_rows()
            assert http("PUT", url, {"version": 2}, headers=staff).status == 200
            moment = time.monotonic()
            # Every worker picks the challenger up within a registry refresh (1 s by default).
            wait_for(lambda before=shadowed_before: shadowed_rows() > before, timeout=30, what="shadowed rows")
            wait_for(lambda moment=moment: answered_after(clients, moment) >= 4 * CLIENTS, timeout=60, what="more")
            assert http("DELETE", url, headers=staff).status == 200
            moment = time.monotonic()
            wait_for(lambda moment=moment: answered_after(clients, moment) >= 2 * CLIENTS, timeout=60, what="more")

    answers = clients.snapshot()
    errors = [(answer.status, answer.error, answer.body[:200]) for answer in answers if answer.status != 200]
    logged_errors = [line[-3000:] for line in stack.server.log_text().splitlines() if '"ERROR"' in line]
    assert not errors, f"{len(errors)} of {len(answers)} requests failed: {errors[:3]}; server: {logged_errors[:1]}"
    ids, versions = [], set()
    for answer in answers:
        versions.add(answer.headers["x-model-version"])
        body = answer.json()
        if "predictions" in body:
            ids += [row["prediction_id"] for row in body["predictions"]]
            assert all(set(row) == {"prediction_id", "species_id", "species_name", "probabilities"}
                       for row in body["predictions"])  # fmt: skip
        else:
            ids.append(int(answer.headers["x-prediction-id"]))
            assert set(body) == {"model", "species_id", "species_name"}
    assert versions == {"1"}, "an answer came from the challenger"
    rows = stack.pg.query(
        "SELECT v.number, c.number FROM classifier_prediction p "
        "JOIN classifier_modelversion v ON v.id = p.version_id "
        "LEFT JOIN classifier_modelversion c ON c.id = p.challenger_version_id WHERE p.id = ANY(%s)",
        (ids,),
    )
    assert len(rows) == len(ids), "answers whose prediction row is missing"
    assert {champion for champion, _ in rows} == {1}
    shadowed = sum(1 for _, challenger in rows if challenger == 2)
    assert shadowed > 0 and {challenger for _, challenger in rows} <= {2, None}
