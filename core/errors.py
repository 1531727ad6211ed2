"""The base of every domain error, and the messages the service answers when it cannot serve.

Services raise a ``DomainError`` subclass; the API's error handler turns it into JSON with
the class's ``status_code`` and ``code`` (and, when the error names one, ``errors`` under
the ``field``), so the handler needs neither app.
"""

from __future__ import annotations


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
