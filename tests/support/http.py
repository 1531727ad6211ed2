"""A small HTTP client that never raises, many clients at once, and Prometheus samples."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    error: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self):
        return json.loads(self.body)


def http(
    method: str, url: str, body: object = None, *, headers: dict[str, str] | None = None, timeout: float = 10
) -> Answer:
    """One request; a refused connection or a timeout is status 0 with the error, not an exception."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, _lower(response.headers), response.read(), started=started)
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, _lower(exc.headers), exc.read(), started=started)
    except (urllib.error.URLError, OSError) as exc:
        return Answer(0, {}, b"", error=f"{type(exc).__name__}: {exc}", started=started)


def _lower(headers) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


class Clients:
    """``count`` threads sending requests in a loop until stopped; every answer is kept."""

    def __init__(self, count: int, send: Callable[[int], Answer]) -> None:
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(index, send), daemon=True) for index in range(count)]

    def _run(self, index: int, send: Callable[[int], Answer]) -> None:
        while not self._stop.is_set():
            answer = send(index)
            with self._lock:
                self.answers.append(answer)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]
