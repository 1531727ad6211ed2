"""The classify door: a token-less POST /classify/<name> answered below Django's handler gets
exactly the answer, headers, log row, limits, metrics and errors of the Django path."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.signals import request_finished, request_started
from django.db import OperationalError, close_old_connections, connection
from prometheus_client import REGISTRY

from classifier.models import Prediction
from penguinsite import classify_door
from penguinsite import wsgi as wsgi_module
from tests.support.data import ADELIE, GENTOO
from tests.support.wsgi import wsgi

pytestmark = pytest.mark.django_db

BODY = json.dumps(GENTOO).encode()
# Headers whose values differ between any two answers.
PER_ANSWER = {"x-request-id", "x-prediction-id"}


@pytest.fixture
def django_unreachable(monkeypatch):
    """The Django predict handler fails the test if a request reaches it."""

    def refuse(environ, start_response):
        raise AssertionError(f"{environ['PATH_INFO']} reached Django's handler")

    monkeypatch.setattr(wsgi_module, "predict_application", refuse)


def both_paths(settings, path: str, body: bytes, **headers: str):
    """The same request answered by the door and, with the door closed, by the Django path."""
    settings.PENGUIN_CLASSIFY_DOOR = True
    door = wsgi("POST", path, body, **headers)
    settings.PENGUIN_CLASSIFY_DOOR = False
    django = wsgi("POST", path, body, **headers)
    settings.PENGUIN_CLASSIFY_DOOR = True
    return door, django


def test_a_plain_classify_is_answered_without_reaching_djangos_handler(knn_model, django_unreachable):
    status, headers, data = wsgi("POST", "/classify/knn", BODY)
    assert status == 200, data
    assert json.loads(data) == {"model": "knn", "species_id": 3, "species_name": "Gentoo"}
    row = Prediction.objects.get(pk=int(headers["x-prediction-id"][0]))
    assert (row.species_id, row.endpoint, row.version.number) == (3, Prediction.Endpoint.CLASSIFY, 1)
    assert row.bill_length_mm == GENTOO["bill_length_mm"] and row.latency_ms > 0


def test_the_door_answers_with_the_django_paths_body_and_headers(knn_model, settings):
    (door_status, door_headers, door_body), (status, headers, body) = both_paths(settings, "/classify/knn", BODY)
    assert door_status == status == 200
    assert door_body == body
    assert {k: v for k, v in door_headers.items() if k not in PER_ANSWER} == {
        k: v for k, v in headers.items() if k not in PER_ANSWER
    }
    assert Prediction.objects.count() == 2  # one row each


@pytest.fixture
def behind_a_tls_proxy(settings):
    """HSTS and a proxy's scheme header, read at start by both paths, as by a worker started now."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    restart = (wsgi_module.predict_application.load_middleware, classify_door._added_headers.cache_clear)
    for step in restart:
        step()
    yield
    settings.SECURE_HSTS_SECONDS = 0
    for step in restart:
        step()


def test_behind_a_tls_proxy_the_door_sends_hsts_like_django(knn_model, settings, behind_a_tls_proxy):
    door, django = both_paths(settings, "/classify/knn", BODY, HTTP_X_FORWARDED_PROTO="https")
    assert door[1]["strict-transport-security"] == django[1]["strict-transport-security"] == ["max-age=3600"]
    plain, _ = both_paths(settings, "/classify/knn", BODY)
    assert "strict-transport-security" not in plain[1]


def test_a_request_id_sent_by_the_client_comes_back(knn_model, django_unreachable):
    _, headers, _ = wsgi("POST", "/classify/knn", BODY, HTTP_X_REQUEST_ID="batch-7.row-12")
    assert headers["x-request-id"] == ["batch-7.row-12"]
    _, headers, _ = wsgi("POST", "/classify/knn", BODY, HTTP_X_REQUEST_ID="has spaces")
    assert headers["x-request-id"] != ["has spaces"] and len(headers["x-request-id"][0]) == 32


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/classify/knn", json.dumps({**ADELIE, "island": 4}).encode(), {}, 400),
        ("/classify/knn", b"{not json", {}, 400),
        ("/classify/knn", b"", {}, 400),
        ("/classify/nope", BODY, {}, 404),
        ("/classify/knn", BODY, {"HTTP_HOST": "evil.example"}, 400),
        ("/classify/knn", BODY, {"HTTP_TRANSFER_ENCODING": "chunked"}, 411),
    ],
    ids=["bad-island", "not-json", "empty", "unknown-model", "unknown-host", "chunked"],
)
def test_every_refusal_is_the_django_paths_own(knn_model, settings, path, body, headers, status):
    (door_status, _, door_body), (django_status, _, django_body) = both_paths(settings, path, body, **headers)
    assert door_status == django_status == status
    assert door_body == django_body
    assert Prediction.objects.count() == 0


def test_the_anonymous_limit_holds_at_the_door(knn_model, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"t-{uuid.uuid4()}"}
    }
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "2/min", "user": "9/min"}}
    answers = [wsgi("POST", "/classify/knn", BODY, REMOTE_ADDR="10.9.8.7") for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 429]
    _, headers, data = answers[2]
    assert json.loads(data)["code"] == "throttled" and int(headers["retry-after"][0]) >= 1
    assert Prediction.objects.count() == 2
    assert wsgi("POST", "/classify/knn", BODY, REMOTE_ADDR="10.9.8.8")[0] == 200  # another client


def test_when_the_row_cannot_be_written_the_answer_is_503_and_the_write_is_not_repeated(knn_model, django_unreachable):
    wsgi("POST", "/classify/knn", BODY)  # the model is loaded; only the log write fails below
    attempts = []

    def fail_log_writes(execute, sql, params, many, context):
        if 'INSERT INTO "classifier_prediction"' in sql:
            attempts.append(sql)
            raise OperationalError("disk full")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail_log_writes):
        status, headers, data = wsgi("POST", "/classify/knn", BODY)
    assert status == 503 and headers["retry-after"] == ["5"]
    assert json.loads(data)["code"] == "database_unavailable" and "species_name" not in json.loads(data)
    assert len(attempts) == 1
    assert Prediction.objects.count() == 1  # the warm-up's row only


def test_the_doors_answers_are_counted_under_the_classify_route(knn_model, django_unreachable):
    labels = {"method": "POST", "route": "/classify/<str:name>", "status": "200"}
    before = REGISTRY.get_sample_value("penguin_http_requests_total", labels) or 0
    for _ in range(3):
        wsgi("POST", "/classify/knn", BODY)
    assert REGISTRY.get_sample_value("penguin_http_requests_total", labels) == before + 3


def test_with_the_door_closed_classify_still_answers(knn_model, settings):
    settings.PENGUIN_CLASSIFY_DOOR = False
    status, headers, data = wsgi("POST", "/classify/knn", BODY)
    assert status == 200 and json.loads(data)["species_name"] == "Gentoo"


class ClientLeftMidBody:
    def read(self, *args):
        raise OSError("the client went away")

    readline = read


def test_a_body_that_never_arrives_whole_is_a_400_naming_it_and_logs_nothing(knn_model):
    status, _, data = wsgi("POST", "/classify/knn", BODY, **{"wsgi.input": ClientLeftMidBody()})
    assert status == 400 and json.loads(data)["code"] == "body_incomplete"
    assert Prediction.objects.count() == 0


# --- the request signals ---------------------------------------------------------------------


@pytest.mark.postgres  # SQLite's in-memory test database ignores close()
@pytest.mark.django_db(transaction=True)
def test_a_connection_past_its_age_is_not_used_and_is_closed_when_the_request_ends(knn_model, django_unreachable):
    wsgi("POST", "/classify/knn", BODY, as_served=True)  # the model loaded and a connection open
    connection.ensure_connection()
    aged = connection.connection
    connection.close_at = 0  # past CONN_MAX_AGE
    used = []

    def note_connection(execute, sql, params, many, context):
        used.append(context["connection"].connection)
        return execute(sql, params, many, context)

    max_age = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 0  # the request's own connection retires when it ends
    try:
        with connection.execute_wrapper(note_connection):
            status, _, _ = wsgi("POST", "/classify/knn", BODY, as_served=True)
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = max_age
    assert status == 200
    assert used and all(raw is not aged for raw in used)  # replaced before the row was written
    assert connection.connection is None  # and closed once the answer was sent
    assert Prediction.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_receivers_of_the_request_signals_hear_the_doors_requests(knn_model, django_unreachable):
    heard = []

    def started(sender, environ, **kwargs):
        heard.append(("started", environ["PATH_INFO"]))

    def finished(sender, **kwargs):
        heard.append(("finished", sender.__name__))

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        status, _, _ = wsgi("POST", "/classify/knn", BODY, as_served=True)
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert status == 200
    assert heard == [("started", "/classify/knn"), ("finished", "WSGIHandler")]


@pytest.mark.django_db(transaction=True)
def test_with_djangos_own_receivers_only_the_door_does_their_work_without_sending(knn_model, monkeypatch):
    sent = []
    for signal in (request_started, request_finished):
        monkeypatch.setattr(signal, "send", lambda *args, signal=signal, **kwargs: sent.append(signal))
    for _ in range(2):
        assert wsgi("POST", "/classify/knn", BODY, as_served=True)[0] == 200
    assert sent == []
    request_started.disconnect(close_old_connections)  # any change to the receivers: sent again
    try:
        assert wsgi("POST", "/classify/knn", BODY, as_served=True)[0] == 200
    finally:
        request_started.connect(close_old_connections)
    assert sent == [request_started]  # the other signal's receivers are still Django's own
