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
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg2.extensions import TRANSACTION_STATUS_IDLE


class DatabaseWrapper(base.DatabaseWrapper):
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
