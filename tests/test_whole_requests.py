"""The default gunicorn worker serves a request only once it has arrived whole.

gunicorn runs with the service's own config (penguinsite/gunicorn.conf.py) and its default
worker, here a single process: what one client is slow to send must not hold back another.
"""

from __future__ import annotations

import http.client
import json
import socket
import time

from tests.support.data import ADELIE, GENTOO, random_penguins
from tests.support.http import http as request
from tests.support.service import gunicorn

JSON = {"Content-Type": "application/json"}


def _head_and_body(penguin: dict) -> tuple[bytes, bytes]:
    body = json.dumps(penguin).encode()
    head = (
        b"POST /classify/knn HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    return head, body


def _answer(conn: socket.socket) -> http.client.HTTPResponse:
    response = http.client.HTTPResponse(conn)
    response.begin()
    return response


def test_a_request_still_arriving_does_not_hold_back_others_and_is_answered_once_whole(live_stack):
    env = {**live_stack.env, "GUNICORN_REQUEST_READ_TIMEOUT": "20"}
    with gunicorn(env, workers=1, threads=1) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as slow:
            head, body = _head_and_body(GENTOO)
            slow.sendall(head + body[:10])  # the headers and a piece of the body, then a pause
            time.sleep(0.3)
            # The only worker is free for everyone else meanwhile, far sooner than the read timeout.
            started = time.monotonic()
            for penguin, species in [(ADELIE, "Adelie"), (GENTOO, "Gentoo"), (ADELIE, "Adelie")]:
                answer = request("POST", f"{server.url}/classify/knn", penguin, timeout=30)
                assert answer.status == 200, (answer.status, answer.body[:300])
                assert answer.json()["species_name"] == species
            assert request("GET", f"{server.url}/healthz", timeout=30).status == 200
            assert time.monotonic() - started < 5
            # The slow client's request, once whole, is answered like any other.
            slow.sendall(body[10:])
            response = _answer(slow)
            assert response.status == 200
            assert json.loads(response.read())["species_name"] == "Gentoo"
            assert response.getheader("Connection") == "close"


def test_a_client_waiting_for_100_continue_is_told_to_send_and_holds_no_worker_meanwhile(live_stack):
    with gunicorn(live_stack.env, workers=1, threads=1) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as waiting:
            head, body = _head_and_body(ADELIE)
            waiting.sendall(head.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"))
            assert waiting.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
            time.sleep(0.3)
            # The only worker answers others while this client has not sent its body.
            started = time.monotonic()
            answer = request("POST", f"{server.url}/classify/knn", GENTOO, timeout=30)
            assert answer.status == 200 and answer.json()["species_name"] == "Gentoo"
            assert time.monotonic() - started < 5
            waiting.sendall(body)
            rest = b""
            while chunk := waiting.recv(65536):
                rest += chunk
            # The final answer, without a second "100 Continue" before it.
            assert rest.startswith(b"HTTP/1.1 200 "), rest[:200]
            assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["species_name"] == "Adelie"


def test_a_slow_upload_that_keeps_sending_is_answered_and_bare_line_feeds_get_a_400(live_stack):
    env = {**live_stack.env, "GUNICORN_REQUEST_READ_TIMEOUT": "1"}
    with gunicorn(env, workers=1, threads=1) as server:
        # Longer in all than the read timeout, but never silent that long.
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as slow:
            head, body = _head_and_body(GENTOO)
            slow.sendall(head)
            for start in range(0, len(body), 20):
                time.sleep(0.5)
                slow.sendall(body[start : start + 20])
            response = _answer(slow)
            assert response.status == 200
            assert json.loads(response.read())["species_name"] == "Gentoo"
        # A request whose lines end in bare line feeds is refused at once, not left to time out.
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as bare:
            started = time.monotonic()
            bare.sendall(b"GET /healthz HTTP/1.1\nHost: localhost\n\n")
            assert bare.recv(64).startswith(b"HTTP/1.1 400")
            assert time.monotonic() - started < 0.9


def test_chunked_and_large_bodies_reach_the_service(live_stack):
    with gunicorn(live_stack.env, workers=1, threads=1) as server:
        # A chunked body (no Content-Length) reaches the service, which answers that it wants one.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        chunks = iter([json.dumps(GENTOO)[:15].encode(), json.dumps(GENTOO)[15:].encode()])
        conn.request("POST", "/classify/knn", body=chunks, headers=JSON, encode_chunked=True)
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())["code"]) == (411, "length_required")
        conn.close()
        # Batches of 2,000 and 20,000 rows (about 0.26 and 2.6 MB).
        for count in (2_000, 20_000):
            rows = random_penguins(count)
            answer = request("POST", f"{server.url}/api/v1/models/knn/predict", {"instances": rows}, timeout=120)
            assert answer.status == 200, (count, answer.status, answer.body[:300])
            assert len(answer.json()["predictions"]) == count


def test_a_request_longer_than_the_worker_timeout_is_answered(live_stack):
    """gunicorn replaces a worker silent for GUNICORN_TIMEOUT; one serving a long request (here a
    training run in-process, without a broker) is not silent."""
    env = {**live_stack.env, "CELERY_BROKER_URL": "", "GUNICORN_TIMEOUT": "3"}
    with gunicorn(env, workers=1, threads=1) as server:
        started = time.monotonic()
        answer = request(
            "POST",
            f"{server.url}/api/v1/training-runs/",
            {"algorithm": "randomforest", "name": "rf-long-request", "params": {"n_estimators": 800}},
            headers={"Authorization": f"Token {live_stack.staff_token}"},
            timeout=300,
        )
        took = time.monotonic() - started
        assert answer.status == 202, (answer.status, answer.body[:300])  # finished in-process
        assert answer.json()["status"] == "succeeded", answer.body[:300]
        assert took > 3  # longer than the timeout
