"""A small closed-loop HTTP load generator: N client threads, keep-alive, bounded.

Each client sends its next request as soon as the previous answer arrived (so "8
concurrent clients" means 8 requests in flight at most). It only talks to 127.0.0.1, stops
by itself after ``duration`` seconds or ``max_requests`` requests, whichever comes first,
and gives up on a server that stops answering (``timeout`` per request). Connections are
kept alive when the server allows it; gunicorn's sync workers close them after each
response, and ``http.client`` then reconnects for the next request, as a real client would.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"
HARD_MAX_SECONDS = 120.0


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    first_error: str = ""
    # Filled in by callers that measure the server's CPU time (bench/run.py measured_load).
    cpu_seconds: float = 0.0
    db_cpu_seconds: float = 0.0
    cpu_ms: float | None = None
    db_cpu_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return self.percentile(99)


def request_once(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 30
):
    """One request on a fresh connection; returns (status, body bytes, seconds)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        started = time.perf_counter()
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - started
    finally:
        connection.close()


def run_load(
    *,
    port: int,
    path: str,
    body: bytes,
    clients: int = 8,
    duration: float = 5.0,
    warmup: float = 1.0,
    max_requests: int = 500_000,
    timeout: float = 10.0,
    method: str = "POST",
) -> LoadResult:
    """Drive ``clients`` closed-loop clients for ``warmup + duration`` seconds.

    Requests completed during the warm-up are not counted. Any status but 200 counts as an
    error (and the first one is kept, so a misconfigured run says why it failed).
    """
    duration = min(duration, HARD_MAX_SECONDS)
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    result = LoadResult()
    lock = threading.Lock()
    issued = [0]

    def client() -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        errors = 0
        first_error = ""
        try:
            while True:
                with lock:
                    if issued[0] >= max_requests:
                        break
                    issued[0] += 1
                sent = time.perf_counter()
                if sent >= stop_at:
                    break
                try:
                    connection.request(method, path, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                    status = response.status
                    if response.will_close:
                        connection.close()
                except (OSError, http.client.HTTPException) as exc:
                    connection.close()
                    status, data = 0, str(exc).encode()
                done = time.perf_counter()
                if sent < measure_from:
                    continue
                if done > stop_at:
                    break
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append((done - sent) * 1000.0)
                else:
                    errors += 1
                    if not first_error:
                        first_error = f"{status}: {data[:200]!r}"
                    if status == 0:
                        time.sleep(0.01)  # a refused connection must not spin
        finally:
            connection.close()
        with lock:
            result.latencies_ms.extend(latencies)
            result.errors += errors
            for status, count in statuses.items():
                result.statuses[status] = result.statuses.get(status, 0) + count
            if first_error and not result.first_error:
                result.first_error = first_error

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=warmup + duration + timeout + 5)
    result.requests = len(result.latencies_ms)
    result.seconds = duration
    return result
