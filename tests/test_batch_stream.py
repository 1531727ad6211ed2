"""A big batch is predicted block by block while PostgreSQL stores the blocks before it.

On PostgreSQL a batch of two blocks or more goes to the log as one COPY that starts before the
model has answered every row: each block of answers is sent as soon as it is computed. What a
caller sees stays the same: every row logged as answered, in one transaction, or none.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import psycopg2
import pytest
from django.db import connection
from django.utils import timezone

from classifier.api.views import predict as predict_views
from classifier.models import Prediction
from classifier.predict import prediction_make
from classifier.prediction_log import STREAM_BLOCK_ROWS, LogBlock, prediction_copy, reserve_ids
from classifier.serving import LoadedModel
from core.datasets import dataset_load
from core.encoding import FIELDS
from tests.support.data import random_penguins
from tests.support.models import register_result
from training.trainer import train

pytestmark = pytest.mark.django_db

ROWS = 4 * STREAM_BLOCK_ROWS + STREAM_BLOCK_ROWS // 2  # five blocks, the last one half full


@pytest.fixture(scope="module")
def weak_knn():
    return train(algorithm="knn", dataset=dataset_load("data/penguins.csv"), params={"n_neighbors": 150})


@pytest.fixture
def shadowed(staff_client, knn_model, weak_knn):
    challenger = register_result("knn", weak_knn, activate=False)
    response = staff_client.put("/api/v1/models/knn/challenger", data={"version": 2}, format="json")
    assert response.status_code == 200, response.content
    return knn_model, challenger


def predict(client, penguins: list[dict]):
    return client.post(
        "/api/v1/models/knn/predict", data=json.dumps({"instances": penguins}), content_type="application/json"
    )


def matrix_of(penguins: list[dict]) -> np.ndarray:
    from core.encoding import parse_rows

    return parse_rows(penguins, prefix="instances")


def test_a_batch_of_several_blocks_logs_every_row_with_both_answers_in_order(api_client, shadowed, weak_knn):
    penguins = random_penguins(ROWS, seed=11)
    response = predict(api_client, penguins)
    assert response.status_code == 200, response.content[:300]
    answers = response.json()["predictions"]
    ids = [answer["prediction_id"] for answer in answers]
    assert ids == sorted(ids) and len(set(ids)) == ROWS
    logged = Prediction.objects.in_bulk(ids)
    rows = [logged[prediction_id] for prediction_id in ids]
    assert [row.species_id for row in rows] == [answer["species_id"] for answer in answers]
    assert [row.probabilities for row in rows] == [answer["probabilities"] for answer in answers]
    inputs = np.array([[row.inputs[name] for name in FIELDS] for row in rows], dtype=float)
    np.testing.assert_array_equal(inputs, matrix_of(penguins))
    assert [row.challenger_species_id for row in rows] == weak_knn.pipeline.predict(inputs).tolist()
    # Each row's latency is the time until its block was answered: one value per block, growing.
    latencies = [row.latency_ms for row in rows]
    if connection.vendor == "postgresql":
        per_block = [latencies[start : start + STREAM_BLOCK_ROWS] for start in range(0, ROWS, STREAM_BLOCK_ROWS)]
        assert all(len(set(block)) == 1 for block in per_block)
        assert 0 < per_block[0][0] < per_block[1][0] < per_block[-1][0]
    else:
        assert len(set(latencies)) == 1 and latencies[0] > 0  # one insert of every row, one latency


@pytest.fixture
def copy_running():
    """Asks PostgreSQL, from a session of its own, whether the log's COPY is running now."""
    settings = connection.settings_dict
    watcher = psycopg2.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"] or None, port=settings["PORT"] or None
    )
    watcher.autocommit = True

    def running() -> bool:
        with watcher.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND query LIKE 'COPY classifier_prediction%%'"
            )
            return cursor.fetchone()[0] == 1

    yield running
    watcher.close()


@pytest.mark.postgres
def test_postgresql_is_storing_the_first_blocks_while_the_model_answers_the_next(
    api_client, knn_model, monkeypatch, copy_running
):
    copying_while_predicting = []
    original = LoadedModel.predict_with_proba

    def watched(self, matrix, *, with_proba):
        copying_while_predicting.append(copy_running())
        return original(self, matrix, with_proba=with_proba)

    monkeypatch.setattr(LoadedModel, "predict_with_proba", watched)
    response = predict(api_client, random_penguins(ROWS))
    assert response.status_code == 200, response.content[:300]
    assert copying_while_predicting == [True] * 5  # the COPY was open as each block was predicted
    assert Prediction.objects.count() == ROWS


@pytest.mark.postgres
def test_the_answer_is_built_block_by_block_while_postgresql_stores_the_rows(
    api_client, knn_model, monkeypatch, copy_running
):
    built = []
    original = predict_views.answer_rows

    def watched(prediction_ids, species_ids, probabilities):
        built.append((len(prediction_ids), copy_running()))
        return original(prediction_ids, species_ids, probabilities)

    monkeypatch.setattr(predict_views, "answer_rows", watched)
    response = predict(api_client, random_penguins(ROWS, seed=5))
    assert response.status_code == 200, response.content[:300]
    # One block's rows at a time, each while the COPY was still open (the last one included).
    assert built == [(STREAM_BLOCK_ROWS, True)] * 4 + [(STREAM_BLOCK_ROWS // 2, True)]
    answers = response.json()["predictions"]
    logged = Prediction.objects.in_bulk([answer["prediction_id"] for answer in answers])
    assert len(logged) == ROWS
    assert [logged[answer["prediction_id"]].species_id for answer in answers] == [
        answer["species_id"] for answer in answers
    ]


@pytest.mark.postgres
def test_a_model_failing_mid_batch_logs_nothing_and_raises_its_own_error(knn_model, monkeypatch):
    original = LoadedModel.predict_with_proba
    calls = []

    def failing_third(self, matrix, *, with_proba):
        calls.append(len(matrix))
        if len(calls) == 3:
            raise RuntimeError("the model's runtime went away")
        return original(self, matrix, with_proba=with_proba)

    monkeypatch.setattr(LoadedModel, "predict_with_proba", failing_third)
    matrix = matrix_of(random_penguins(ROWS))
    with pytest.raises(RuntimeError, match="runtime went away"):
        prediction_make(model_name="knn", matrix=matrix, endpoint="predict", with_probabilities=True)
    assert calls == [STREAM_BLOCK_ROWS] * 3
    assert Prediction.objects.count() == 0  # and the connection is usable: the COPY was abandoned

    monkeypatch.setattr(LoadedModel, "predict_with_proba", original)
    outcome = prediction_make(model_name="knn", matrix=matrix, endpoint="predict", with_probabilities=True)
    assert Prediction.objects.filter(pk__in=outcome.prediction_ids).count() == ROWS


@pytest.mark.postgres
@pytest.mark.parametrize("stop", [SystemExit, KeyboardInterrupt])
def test_a_worker_stopped_mid_batch_stops_with_nothing_logged_and_the_connection_clean(knn_model, monkeypatch, stop):
    original = LoadedModel.predict_with_proba
    calls = []

    def stopped_on_second(self, matrix, *, with_proba):
        calls.append(len(matrix))
        if len(calls) == 2:  # as gunicorn's timeout or a signal lands in the middle of a batch
            raise stop("stopped")
        return original(self, matrix, with_proba=with_proba)

    monkeypatch.setattr(LoadedModel, "predict_with_proba", stopped_on_second)
    with pytest.raises(stop):
        prediction_make(model_name="knn", matrix=matrix_of(random_penguins(ROWS)), endpoint="predict")
    assert Prediction.objects.count() == 0


@pytest.mark.postgres
def test_a_block_that_cannot_be_encoded_raises_its_own_error_not_a_database_one(knn_model, monkeypatch):
    from classifier import prediction_log

    def broken(**columns):
        raise MemoryError("no room for the block")

    monkeypatch.setattr(prediction_log, "copy_payload", broken)
    with pytest.raises(MemoryError, match="no room"):
        prediction_make(model_name="knn", matrix=matrix_of(random_penguins(ROWS)), endpoint="predict")
    assert Prediction.objects.count() == 0


@pytest.mark.postgres
def test_a_challenger_failing_mid_batch_leaves_its_later_rows_without_a_shadow_answer(
    api_client, shadowed, weak_knn, monkeypatch
):
    original = LoadedModel.predict  # the challenger's answers; the champion's come from predict_with_proba
    calls = []

    def failing_second(self, matrix):
        calls.append(len(matrix))
        if len(calls) == 2:
            raise RuntimeError("challenger broke")
        return original(self, matrix)

    monkeypatch.setattr(LoadedModel, "predict", failing_second)
    penguins = random_penguins(ROWS, seed=3)
    response = predict(api_client, penguins)
    assert response.status_code == 200, response.content[:300]
    assert calls == [STREAM_BLOCK_ROWS] * 2  # not asked again once it failed
    ids = [answer["prediction_id"] for answer in response.json()["predictions"]]
    logged = Prediction.objects.in_bulk(ids)
    rows = [logged[prediction_id] for prediction_id in ids]
    first = matrix_of(penguins[:STREAM_BLOCK_ROWS])
    expected = weak_knn.pipeline.predict(first).tolist()
    assert [row.challenger_species_id for row in rows[:STREAM_BLOCK_ROWS]] == expected
    assert {row.challenger_species_id for row in rows[STREAM_BLOCK_ROWS:]} == {None}
    assert {row.challenger_version_id for row in rows[STREAM_BLOCK_ROWS:]} == {None}


@pytest.mark.postgres
@pytest.mark.parametrize("given", [ROWS - 1, ROWS + 1])
def test_blocks_that_do_not_cover_the_rows_exactly_write_nothing(knn_model, given):
    matrix = matrix_of(random_penguins(ROWS))
    blocks = [LogBlock(np.ones(given, dtype=np.int64), None, 1.0)]
    with pytest.raises(ValueError, match=f"answers for {given} rows, not {ROWS}"):
        prediction_copy(
            model_id=knn_model.model_id,
            version_id=knn_model.pk,
            created_at=timezone.now(),
            endpoint="predict",
            matrix=matrix,
            blocks=blocks,
        )
    assert Prediction.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_session_ended_mid_copy_answers_503_logs_nothing_and_the_next_batch_is_logged(
    api_client, knn_model, monkeypatch
):
    settings = connection.settings_dict
    original = LoadedModel.predict_with_proba
    calls = []

    def ending_on_second(self, matrix, *, with_proba):
        calls.append(len(matrix))
        if len(calls) == 2:  # the COPY is open and holds the first block: the database ends the session
            with connection.cursor() as cursor:
                pid = cursor.connection.info.backend_pid
            observer = psycopg2.connect(
                dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"] or None, port=settings["PORT"]
            )
            observer.autocommit = True
            with observer.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            observer.close()
        return original(self, matrix, with_proba=with_proba)

    monkeypatch.setattr(LoadedModel, "predict_with_proba", ending_on_second)
    penguins = random_penguins(ROWS)
    failed = predict(api_client, penguins)
    assert failed.status_code == 503, failed.content[:300]
    assert failed["Retry-After"] and failed.json()["code"]
    assert Prediction.objects.count() == 0

    monkeypatch.setattr(LoadedModel, "predict_with_proba", original)
    logged = predict(api_client, penguins)
    assert logged.status_code == 200, logged.content[:300]
    assert Prediction.objects.count() == ROWS


@pytest.mark.postgres
def test_ids_reserved_while_another_session_takes_ids_are_each_batchs_own(db):
    settings = connection.settings_dict
    other = psycopg2.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"] or None, port=settings["PORT"] or None
    )
    other.autocommit = True
    taken_elsewhere: list[int] = []
    taking, stop = threading.Event(), threading.Event()

    def take_one_at_a_time():  # as single classifies do, in their own sessions
        with other.cursor() as cursor:
            while not stop.is_set():
                cursor.execute("SELECT nextval(pg_get_serial_sequence('classifier_prediction', 'id'))")
                taken_elsewhere.append(cursor.fetchone()[0])
                taking.set()

    taker = threading.Thread(target=take_one_at_a_time)
    taker.start()
    try:
        assert taking.wait(timeout=30)
        batches = [reserve_ids(20_000) for _ in range(4)]
    finally:
        stop.set()
        taker.join()
        other.close()
    assert [len(batch) for batch in batches] == [20_000] * 4
    assert all(batch == sorted(set(batch)) for batch in batches)
    reserved = {value for batch in batches for value in batch}
    assert len(reserved) == 80_000 and not reserved & set(taken_elsewhere)
    # The other session's values fell inside the batches' ranges: the ids came back one by one.
    assert any(batch[-1] - batch[0] + 1 > len(batch) for batch in batches)
