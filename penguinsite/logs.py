"""Logs as one JSON object per line, each tagged with the request id that caused it.

Django (``LOGGING`` in settings), the Celery worker and gunicorn (``logger_class`` in
``gunicorn.conf.py``) all write through :class:`JsonFormatter`, so one log pipeline reads
them all. ``PENGUIN_LOG_FORMAT=text`` switches back to plain lines for a terminal.

The request id is set by ``penguinsite.middleware.RequestIdMiddleware`` for the duration of
a request and returned in the ``X-Request-ID`` response header; gunicorn's access line reads
it from that header. Nothing here logs headers, cookies or bodies, so passwords and tokens
never reach the log; extra fields whose name looks secret are masked as a second line of
defence.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from gunicorn.glogging import Logger as GunicornLogger

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_NAME = re.compile(r"pass(word)?|secret|token|auth|cookie|session|key", re.IGNORECASE)
MASK = "[redacted]"


def configure(config: dict[str, Any]) -> None:
    """Django's LOGGING_CONFIG: the dictConfig, plus Python warnings sent through logging.

    Without the second step a library's warning would reach stderr as bare text lines in
    the middle of the JSON ones.
    """
    logging.config.dictConfig(config)
    logging.captureWarnings(True)


def current_request_id() -> str | None:
    return _request_id.get()


@contextmanager
def request_id_bound(request_id: str) -> Iterator[None]:
    """Tag every log line written inside the block with ``request_id``."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def mask_query(query: str) -> str:
    """The query string with the values of secret-looking parameters masked."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(key, MASK if _SECRET_NAME.search(key) else value) for key, value in pairs])


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id"?, "process", ...extra, "exc"?}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        # django.request logs 4xx/5xx after the middleware returned, passing the request.
        request = getattr(record, "request", None)
        request_id = getattr(record, "request_id", None) or getattr(request, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and name not in entry and name != "request":
                entry[name] = MASK if _SECRET_NAME.search(name) and name != "request_id" else value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class GunicornJsonLogger(GunicornLogger):
    """gunicorn's logger writing its error log and access log through JsonFormatter.

    Each access line carries the method, path, status, bytes, duration and the request id
    that the application returned in X-Request-ID; never headers, cookies or bodies.
    """

    def setup(self, cfg) -> None:
        super().setup(cfg)
        formatter = JsonFormatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        try:
            status = int(status)
        except (TypeError, ValueError):
            pass
        response_headers = resp.headers.items() if hasattr(resp.headers, "items") else resp.headers
        request_id = next((value for name, value in response_headers if name.lower() == "x-request-id"), None)
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("PATH_INFO", "-")
        try:
            self.access_log.info(
                "%s %s %s",
                method,
                path,
                status,
                extra={
                    "event": "access",
                    "method": method,
                    "path": path,
                    "query": mask_query(environ.get("QUERY_STRING", "")),
                    "status": status,
                    "bytes": getattr(resp, "sent", None),
                    "duration_ms": round(request_time.total_seconds() * 1000.0, 3),
                    "remote_addr": environ.get("REMOTE_ADDR", "-"),
                    "user_agent": environ.get("HTTP_USER_AGENT", "-"),
                    "request_id": request_id,
                },
            )
        except Exception:
            self.exception("could not write the access log line")
