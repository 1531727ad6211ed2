"""One HTTP request at a time, with its answer read and its time taken (http.client, 127.0.0.1 only).

Load itself comes from wrk (bench/wrk.py). This is for what wrk does not do: requests whose
answers the bench reads and checks one by one (the warm-up's status checks, the 10,000-row
batch and its 10,000 answers, the logged-in pages of the scale section, each timed alone).
"""

from __future__ import annotations

import http.client
import time

HOST = "127.0.0.1"


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
