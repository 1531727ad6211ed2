"""The lean path of the predict doors: cookie-less POSTs skip the browser middleware and DRF's
request wrapper, with the same answers, log rows, errors and limits; rate-limit counts reach
Redis in batches and the limit holds within the stated tolerance."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import RequestFactory

from classifier.models import Prediction
from core.api import throttling
from core.api.throttling import AnonRateThrottle, FixedWindowRateThrottle, PendingCounts
from tests.support.data import ADELIE
from tests.support.models import broker_url
from tests.support.wsgi import wsgi

pytestmark = pytest.mark.django_db


def test_a_cookieless_classify_answers_as_before_and_logs_its_row(knn_model):
    status, headers, data = wsgi("POST", "/classify/knn", json.dumps(ADELIE).encode())
    assert status == 200, data
    assert json.loads(data) == {"model": "knn", "species_id": 1, "species_name": "Adelie"}
    assert headers["content-type"] == ["application/json"]
    assert "set-cookie" not in headers  # no session, no CSRF cookie
    assert headers["x-request-id"] and headers["x-frame-options"] == ["DENY"]
    row = Prediction.objects.get(pk=int(headers["x-prediction-id"][0]))
    assert row.species_id == 1 and row.endpoint == Prediction.Endpoint.CLASSIFY


def test_a_cookieless_v1_predict_answers_with_probabilities_and_logs_them(knn_model):
    body = json.dumps({"instances": [ADELIE, ADELIE]}).encode()
    status, headers, data = wsgi("POST", "/api/v1/models/knn/predict", body)
    assert status == 200, data
    answer = json.loads(data)
    assert answer["count"] == 2 and [row["species_name"] for row in answer["predictions"]] == ["Adelie"] * 2
    assert sum(answer["predictions"][0]["probabilities"].values()) == pytest.approx(1.0)
    ids = [row["prediction_id"] for row in answer["predictions"]]
    assert Prediction.objects.filter(pk__in=ids).count() == 2


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/classify/knn", {**ADELIE, "island": 4}, 400, "island"),
        ("/classify/knn", {k: v for k, v in ADELIE.items() if k != "sex"}, 400, "sex"),
        ("/api/v1/models/knn/predict", {"instances": [ADELIE, {**ADELIE, "year": 1900}]}, 400, "instances[1].year"),
        ("/classify/nope", ADELIE, 404, None),
        ("/classify/knn", "{not json", 400, None),
    ],
)
def test_lean_errors_are_the_same_json_and_log_nothing(knn_model, path, body, status, field):
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    got, headers, data = wsgi("POST", path, raw)
    assert got == status, data
    answer = json.loads(data)
    assert answer["detail"] and answer["code"]
    if field:
        assert field in answer["errors"]
    assert Prediction.objects.count() == 0


def test_a_body_over_the_limit_is_413_on_the_lean_path(knn_model, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    status, _, data = wsgi("POST", "/classify/knn", json.dumps({**ADELIE, "pad": "x" * 2000}).encode())
    assert status == 413 and json.loads(data)["code"] == "payload_too_large"


def test_the_admin_keeps_its_session_and_csrf_middleware(db):
    status, headers, _ = wsgi("GET", "/admin/login/")
    assert status == 200
    assert any(cookie.strip().startswith("csrftoken=") for cookie in headers.get("set-cookie", []))
    status, _, data = wsgi("POST", "/admin/login/", b"username=x&password=y", CONTENT_TYPE="text/plain")
    assert status == 403  # no CSRF token: refused as before


@pytest.fixture
def redis_limits(settings, monkeypatch):
    """A private Redis key space, a frozen clock mid-window, fresh in-process counts."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": broker_url(),
            "KEY_PREFIX": f"test-{uuid.uuid4()}",
        }
    }
    settings.PENGUIN_THROTTLE_BATCH = 10
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "1000/min"}}
    monkeypatch.setattr(FixedWindowRateThrottle, "timer", staticmethod(lambda: 1_800_000_030.0))
    monkeypatch.setattr(throttling, "_pending_counts", PendingCounts())


def admitted(calls: int, workers: list[PendingCounts], monkeypatch) -> int:
    request = RequestFactory().post("/classify/knn", REMOTE_ADDR="10.1.2.3")
    request.user = None
    allowed = 0
    for call in range(calls):
        monkeypatch.setattr(throttling, "_pending_counts", workers[call % len(workers)])
        allowed += AnonRateThrottle().allow_request(request, None)
    return allowed


@pytest.mark.redis
def test_one_worker_counting_in_batches_admits_exactly_the_limit(redis_limits, monkeypatch):
    assert admitted(1100, [PendingCounts()], monkeypatch) == 1000


@pytest.mark.redis
def test_several_workers_counting_in_batches_stay_within_workers_times_batch(redis_limits, monkeypatch):
    workers = [PendingCounts() for _ in range(4)]
    allowed = admitted(1200, workers, monkeypatch)
    assert 1000 <= allowed <= 1000 + 4 * 10


@pytest.mark.redis
def test_a_small_limit_is_counted_exactly_across_workers(redis_limits, settings, monkeypatch):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "150/min"}}
    assert admitted(200, [PendingCounts() for _ in range(4)], monkeypatch) == 150
