"""On PostgreSQL a logged answer's row goes in through a statement prepared once per connection.

What the server holds is read from ``pg_prepared_statements`` on the service's own
connection (its custom and generic plan counts say how often the statement ran); what a
caller sees is the answer and the row it names.
"""

from __future__ import annotations

import json

import psycopg2
import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from classifier.models import Prediction
from classifier.prediction_log import LOG_FIELDS, PREPARED_INSERT, prediction_insert_one
from tests.support.data import ADELIE, GENTOO

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def classify(client, body: dict) -> dict:
    """One penguin to the predict door; its answer, which names the logged row."""
    response = client.post("/api/v1/models/knn/predict", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    (answer,) = response.json()["predictions"]
    return answer


def prepared_runs() -> int | None:
    """How often this connection ran the log's prepared INSERT, or None when it holds none
    (a connection kept from an earlier test may hold it already)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements WHERE name LIKE %s",
            [PREPARED_INSERT + "%"],
        )
        rows = cursor.fetchall()
    if not rows:
        return None
    assert len(rows) == 1, rows  # one prepared INSERT per session
    assert 'INSERT INTO "classifier_prediction"' in rows[0][0]
    return rows[0][1]


def log_values(row: Prediction) -> tuple:
    """A logged row's values as the log's INSERT takes them."""
    return tuple(getattr(row, Prediction._meta.get_field(name).attname) for name in LOG_FIELDS)


def logged(answer: dict) -> Prediction:
    return Prediction.objects.get(pk=answer["prediction_id"])


@pytest.fixture
def session_ended():
    """End the service connection's session from another one, as a database restart would."""
    database = connection.settings_dict

    def end() -> None:
        pid = connection.connection.get_backend_pid()
        observer = psycopg2.connect(
            host=database["HOST"] or "127.0.0.1",
            port=database["PORT"] or 5432,
            user=database["USER"],
            dbname=database["NAME"],
        )
        observer.autocommit = True
        with observer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            for _ in range(200):
                cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
                if cursor.fetchone() is None:
                    break
                cursor.execute("SELECT pg_sleep(0.05)")
        observer.close()

    return end


def test_every_classify_runs_the_one_prepared_insert_and_logs_its_row(api_client, knn_model):
    before = prepared_runs() or 0

    answers = [classify(api_client, penguin) for penguin in (ADELIE, GENTOO, ADELIE)]

    assert prepared_runs() == before + 3
    assert [logged(answer).species_id for answer in answers] == [1, 3, 1]
    assert [logged(answer).inputs["bill_length_mm"] for answer in answers] == [
        ADELIE["bill_length_mm"],
        GENTOO["bill_length_mm"],
        ADELIE["bill_length_mm"],
    ]


def test_a_statement_deallocated_behind_the_connections_back_is_prepared_again(api_client, knn_model):
    classify(api_client, ADELIE)
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what DISCARD ALL or a pooler's reset does to a session
    assert prepared_runs() is None

    answer = classify(api_client, GENTOO)

    assert logged(answer).species_id == 3
    assert prepared_runs() == 1


def test_a_session_the_database_ended_is_replaced_and_the_insert_prepared_on_the_new_one(
    api_client, knn_model, session_ended
):
    classify(api_client, ADELIE)
    session_ended()
    connection.close_if_unusable_or_obsolete()  # what Django does when the next request starts

    with transaction.atomic():  # where a statement the session lacks is not prepared again on the spot
        answer = classify(api_client, GENTOO)

    assert logged(answer).species_id == 3
    assert prepared_runs() == 1


def test_with_prepared_statements_off_the_plain_insert_logs_the_row(api_client, knn_model, monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "PREPARED_STATEMENTS", False)
    before = prepared_runs()

    answer = classify(api_client, GENTOO)

    assert logged(answer).species_id == 3
    assert prepared_runs() == before


def test_a_query_capture_sees_the_insert_itself(api_client, knn_model):
    before = prepared_runs()
    with CaptureQueriesContext(connection) as queries:
        answer = classify(api_client, GENTOO)

    writes = [query["sql"] for query in queries.captured_queries if "classifier_prediction" in query["sql"]]
    assert len(writes) == 1
    assert writes[0].startswith('INSERT INTO "classifier_prediction"')
    assert logged(answer).species_id == 3
    assert prepared_runs() == before


@pytest.mark.parametrize("transaction_kind", ["atomic block", "autocommit off"])
def test_a_statement_lost_inside_a_transaction_fails_that_call_and_the_next_prepares_it(
    api_client, knn_model, transaction_kind
):
    values = log_values(logged(classify(api_client, ADELIE)))
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    if transaction_kind == "atomic block":
        with pytest.raises(DatabaseError, match="does not exist"), transaction.atomic():
            prediction_insert_one(values)
    else:
        transaction.set_autocommit(False)
        try:
            with pytest.raises(DatabaseError, match="does not exist"):  # the cause, not "transaction is aborted"
                prediction_insert_one(values)
            transaction.rollback()
        finally:
            transaction.set_autocommit(True)

    with transaction.atomic():
        written = prediction_insert_one(values)
    assert Prediction.objects.get(pk=written).species_id == 1
    assert prepared_runs() == 1


def test_a_statement_whose_table_changed_is_prepared_again(knn_model):
    probe = "SELECT value FROM prepared_probe WHERE value = %s"
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE prepared_probe (value integer)")
        cursor.execute("INSERT INTO prepared_probe VALUES (7)")
    assert connection.fetchone_prepared("probe", probe, [7]) == (7,)
    with connection.cursor() as cursor:  # as a migration would: the result's type changes
        cursor.execute("ALTER TABLE prepared_probe ALTER COLUMN value TYPE bigint")

    assert connection.fetchone_prepared("probe", probe, [7]) == (7,)


def test_without_health_checks_a_dead_session_refuses_one_call_with_503_and_the_next_is_logged(
    api_client, knn_model, session_ended, monkeypatch
):
    classify(api_client, ADELIE)
    monkeypatch.setattr(connections["default"], "health_check_enabled", False)
    session_ended()

    refused = api_client.post("/api/v1/models/knn/predict", data=json.dumps(GENTOO), content_type="application/json")

    assert refused.status_code == 503
    assert "detail" in refused.json()
    connection.close_if_unusable_or_obsolete()  # what Django does when the next request starts
    assert logged(classify(api_client, GENTOO)).species_id == 3
    assert prepared_runs() == 1
