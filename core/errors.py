"""The base of every domain error, and the messages the service answers when it cannot serve.

Services raise a ``DomainError`` subclass; the API's error handler turns it into JSON with
the class's ``status_code`` and ``code`` (and, when the error names one, ``errors`` under
the ``field``), so the handler needs neither app.
"""

from __future__ import annotations

import logging
import threading
import time


class DomainError(Exception):
    """A request that cannot be done; the message tells the user why (and ``field`` where)."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# The 503 answers, shared by the API's error handler and the middleware (outside DRF).
DATABASE_UNAVAILABLE = "The database is unavailable; nothing was recorded. Try again shortly."
STORAGE_UNAVAILABLE = "The model files cannot be read right now; nothing was recorded. Try again shortly."
BODY_INCOMPLETE = (
    "The request body stopped arriving before it was complete (GUNICORN_REQUEST_READ_TIMEOUT); "
    "nothing was recorded. Send the whole body at once."
)


class FailureStreak:
    """Logs an outage without flooding the log: the first failure of a streak with its
    traceback, then one line per failure with the count so far.

    A streak ends once ``quiet_seconds`` pass without a failure; the next one starts a new
    streak (and logs its traceback again). Counted per process.
    """

    def __init__(self, what: str, logger: logging.Logger, quiet_seconds: float = 60.0) -> None:
        self.what = what
        self.logger = logger
        self.quiet_seconds = quiet_seconds
        self._lock = threading.Lock()
        self._count = 0
        self._first = self._last = 0.0

    def failed(self, exc: BaseException, path: str) -> None:
        with self._lock:
            now = time.monotonic()
            if self._count == 0 or now - self._last > self.quiet_seconds:
                self._count, self._first = 0, now
            self._count += 1
            self._last = now
            count, since = self._count, now - self._first
        if count == 1:
            self.logger.error("%s while serving %s", self.what, path, exc_info=exc)
            return
        text = str(exc).strip()
        self.logger.error(
            "%s while serving %s: failure %d in a row in this process over %.0fs (traceback logged with the first): "
            "%s: %s",
            self.what,
            path,
            count,
            since,
            type(exc).__name__,
            text.splitlines()[0] if text else "",
        )


_failures_logger = logging.getLogger("penguin.outages")
# One streak per kind of outage, shared by the API's error handler and the middleware.
DATABASE_FAILURES = FailureStreak("database error", _failures_logger)
STORAGE_FAILURES = FailureStreak("storage error", _failures_logger)
