"""The connection check before each request's first query, on PostgreSQL.

A connection the database has ended is replaced before the request uses it; a connection
that is well is used without a round trip. What the session last sent is read from
``pg_stat_activity`` by a second connection.
"""

from __future__ import annotations

import psycopg2
import pytest
from django.db import OperationalError, ProgrammingError, connections

from tests.support.processes import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def session():
    """A service connection of its own (not the test's), as a worker thread holds one."""
    default = connections["default"]
    wrapper = default.__class__({**default.settings_dict, "CONN_HEALTH_CHECKS": True, "CONN_MAX_AGE": None}, "health")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


@pytest.fixture
def observer():
    """A plain psycopg2 connection to the same server, to read and end other sessions."""
    db = connections["default"].settings_dict
    watcher = psycopg2.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    )
    watcher.autocommit = True
    yield watcher.cursor()
    watcher.close()


def backend_pid(wrapper) -> int:
    """The session's server process, as libpq knows it (no query sent)."""
    return wrapper.connection.get_backend_pid()


def previous_request(wrapper) -> None:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 'the previous request'")


def last_query(observer, pid: int) -> str:
    observer.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
    return observer.fetchone()[0]


def new_request(wrapper) -> None:
    """What Django does when a request starts, and before the request's first query."""
    wrapper.close_if_unusable_or_obsolete()
    wrapper.close_if_health_check_failed()


@pytest.mark.parametrize(
    ("query_check", "last_sent"),
    [(False, "SELECT 'the previous request'"), (True, "SELECT 1")],
    ids=["reads-the-socket-without-a-round-trip", "query-check-asked-for-sends-select-1"],
)
def test_a_healthy_connection_is_kept_and_checked(session, observer, query_check, last_sent):
    session.settings_dict["HEALTH_CHECK_QUERY"] = query_check
    pid = backend_pid(session)
    previous_request(session)

    new_request(session)

    assert backend_pid(session) == pid
    assert last_query(observer, pid) == last_sent


def end_session(observer, pid: int) -> None:
    """End the session from the server's side, and wait until it is gone."""
    observer.execute("SELECT pg_terminate_backend(%s)", [pid])
    wait_for(lambda: not session_exists(observer, pid), timeout=10, what="the session to end")


def test_a_session_the_database_ended_is_replaced_before_the_request_uses_it(session, observer):
    pid = backend_pid(session)
    end_session(observer, pid)

    new_request(session)

    previous_request(session)  # the request's first query: answered
    assert backend_pid(session) != pid  # on a new session


def test_without_health_checks_the_ended_session_fails_the_request(session, observer):
    session.close()
    session.settings_dict["CONN_HEALTH_CHECKS"] = False
    session.ensure_connection()
    pid = backend_pid(session)
    end_session(observer, pid)

    new_request(session)

    with pytest.raises(OperationalError):
        previous_request(session)


def session_exists(observer, pid: int) -> bool:
    observer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
    return observer.fetchone() is not None


def test_after_a_failed_query_the_connection_is_proved_with_select_1(session, observer):
    pid = backend_pid(session)
    with pytest.raises(ProgrammingError), session.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")  # an error Django marks the connection for

    session.close_if_unusable_or_obsolete()  # the end of the request that failed

    assert backend_pid(session) == pid
    assert last_query(observer, pid) == "SELECT 1"
