"""Django's PostgreSQL backend, with a health check that costs no round trip while the
connection is well.

Django's health check (``CONN_HEALTH_CHECKS``) sends ``SELECT 1`` before each request's first
query, so a connection the database has ended is replaced instead of failing that request.
On a single classify that round trip cost 2–7% of the requests per second and an eighth of
PostgreSQL's CPU per request (bench/README.md). A server that ends a session
(a restart or shutdown, ``pg_terminate_backend``, ``idle_session_timeout``, a crashed
backend) sends an error message and closes the socket, so the client's end of it becomes
readable. An idle connection with nothing to read has not been ended: it is used as it is.
Anything waiting to be read, or a hang-up, and Django's ``SELECT 1`` decides, as before.

After a failed query, and on a connection left inside a transaction, Django's ``SELECT 1``
decides as well: there the socket alone proves too little.

A network path that drops idle connections without telling either end (some NATs and load
balancers) gives the socket nothing to read; ``DATABASE_HEALTH_CHECK_QUERY=1`` keeps the
``SELECT 1`` before every request for such a path.

``fetchone_prepared`` runs a statement the service sends on every request (the prediction
log's single-row INSERT) as a server-side prepared statement: PostgreSQL parses and plans it
once per connection instead of on every call, which took a tenth of its CPU per INSERT
(bench/README.md). psycopg2 prepares nothing by itself. A statement the session lost, or
whose table a migration changed, is prepared again on the spot outside a transaction; inside
one, that call fails and the next prepares it. A connection pooler that hands a session's
statements to other server sessions (PgBouncer in transaction or statement mode) loses them
between calls: ``DATABASE_PREPARED_STATEMENTS=0`` sends the plain statement.
"""

from __future__ import annotations

import select
from collections.abc import Sequence

import psycopg2
from django.db.backends.postgresql import base
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

# What a prepared statement that stopped working answers: invalid_sql_statement_name, the
# session no longer has it (deallocated by DISCARD ALL or DEALLOCATE since it was prepared), and
# feature_not_supported, "cached plan must not change result type" (a migration changed a table
# it reads). Either way it is prepared afresh.
_STATEMENT_GONE = ("26000", "0A000")


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prepared: dict[str, str] = {}  # a statement's name here → its EXECUTE on this session
        self._prepared_count = 0

    def connect(self) -> None:
        super().connect()
        self._prepared = {}  # a new session holds no prepared statement

    def prepared_allowed(self) -> bool:
        """Whether a statement may run prepared now: allowed by the settings, and nothing that
        reads statements through Django's cursor is listening (an execute wrapper, the query
        log of DEBUG or of a test's query capture), so they keep seeing the statement itself."""
        return bool(
            self.settings_dict.get("PREPARED_STATEMENTS") and not self.execute_wrappers and not self.queries_logged
        )

    def fetchone_prepared(self, name: str, sql: str, params: Sequence) -> tuple | None:
        """The first row of ``sql`` (psycopg2's ``%s`` placeholders, no other percent sign)
        run with ``params`` as a statement prepared on this connection: the first call sends
        ``PREPARE`` and ``EXECUTE`` in one round trip, later calls ``EXECUTE`` alone.

        The connection is checked and opened as Django's cursor does it (health check,
        thread, broken transaction), and errors come out as Django's database errors."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        self.validate_thread_sharing()
        if self.in_atomic_block:
            self.validate_no_broken_transaction()
        raw = self.connection
        execute = self._prepared.get(name)
        with self.wrap_database_errors, raw.cursor() as cursor:
            if execute is None:
                return self._prepare_and_fetch(cursor, name, sql, params)
            try:
                cursor.execute(execute, params)
            except psycopg2.Error as exc:
                if exc.pgcode not in _STATEMENT_GONE:
                    raise
                del self._prepared[name]  # the next call prepares it afresh
                if raw.get_transaction_status() != TRANSACTION_STATUS_IDLE:
                    raise  # a transaction is open, and the failed statement has ended it
                return self._prepare_and_fetch(cursor, name, sql, params)
            return cursor.fetchone()

    def _prepare_and_fetch(self, cursor, name: str, sql: str, params: Sequence) -> tuple | None:
        # Each preparation takes a new name on the session, so it never meets one that a failed
        # call left behind.
        self._prepared_count += 1
        on_session = f"{name}_{self._prepared_count}"
        pieces = sql.split("%s")
        numbered = "".join(f"{piece}${number}" for number, piece in enumerate(pieces[:-1], 1)) + pieces[-1]
        execute = f"EXECUTE {on_session}" + (f" ({', '.join(['%s'] * len(params))})" if params else "")
        cursor.execute(f"PREPARE {on_session} AS {numbered}; {execute}", params)
        self._prepared[name] = execute
        return cursor.fetchone()

    def is_usable(self) -> bool:
        if self.connection is None or self.connection.closed:
            return False
        if (
            self.settings_dict.get("HEALTH_CHECK_QUERY")
            or self.errors_occurred
            or self.connection.get_transaction_status() != TRANSACTION_STATUS_IDLE
            or not hasattr(select, "poll")
        ):
            return super().is_usable()
        poller = select.poll()
        poller.register(self.connection.fileno(), select.POLLIN | select.POLLPRI)
        if poller.poll(0):  # something to read, a hang-up or an error: ask the server
            return super().is_usable()
        return True
