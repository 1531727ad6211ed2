"""Authentication (token, session) and rate limits (429 with Retry-After) on the API."""

from __future__ import annotations

import json
import uuid
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from classifier.models import Prediction
from core.api.throttling import FixedWindowRateThrottle
from tests.support.data import ADELIE
from tests.support.models import broker_url

pytestmark = pytest.mark.django_db


def create_token(username: str) -> str:
    out = StringIO()
    call_command("drf_create_token", username, stdout=out)
    return out.getvalue().split()[2]  # "Generated token <key> for user <name>"


def predict(client, name="knn", **extra):
    return client.post(
        f"/api/v1/models/{name}/predict", data=json.dumps(ADELIE), content_type="application/json", **extra
    )


def test_a_token_made_with_drf_create_token_authenticates_staff_writes(knn_model, staff_user):
    prediction_id = predict(APIClient()).json()["predictions"][0]["prediction_id"]
    token = create_token("staff")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.post(f"/api/v1/predictions/{prediction_id}/feedback", data={"species": 1}, format="json")
    assert response.status_code == 200, response.content
    assert Prediction.objects.get(pk=prediction_id).feedback_by == staff_user


def test_a_token_for_an_unknown_user_cannot_be_made(db):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("drf_create_token", "ghost", stdout=StringIO())


def test_a_wrong_token_is_401(knn_model):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.post("/api/v1/registry/sync")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_a_non_staff_token_is_403_on_writes(knn_model, user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_token('reader')}")
    assert client.post("/api/v1/registry/sync").status_code == 403
    assert client.get("/api/v1/predictions").status_code == 200


def test_a_session_login_authenticates_too(knn_model, staff_user):
    client = APIClient()
    assert client.login(username="staff", password="staff-pass-123")
    assert client.get("/api/v1/predictions").status_code == 200
    assert client.post("/api/v1/registry/sync").status_code == 200


def test_a_session_write_without_the_csrf_token_is_refused(knn_model, staff_user):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="staff", password="staff-pass-123")
    response = client.post("/api/v1/registry/sync")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


# --- rate limits -----------------------------------------------------------------------------------------


@pytest.fixture
def frozen_window(monkeypatch):
    """The throttles' clock stands still mid-window, so no test straddles a window boundary."""
    monkeypatch.setattr(FixedWindowRateThrottle, "timer", staticmethod(lambda: 1_800_000_030.0))


@pytest.fixture
def low_limits(settings, frozen_window):
    """Three requests a minute for anonymous callers, five for a user; a private cache."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"t-{uuid.uuid4()}"}
    }
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "3/min", "user": "5/min"},
    }


def assert_throttled(response):
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert response["Retry-After"] == "30"  # the rest of the (frozen) minute


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.post("/classify/knn", data=json.dumps(ADELIE), content_type="application/json"),
        lambda client: client.get("/models"),
        lambda client: predict(client),
        lambda client: client.get("/api/v1/models"),
        lambda client: client.get("/api/v1/models/knn/versions/1"),
    ],
    ids=["compat-classify", "compat-models", "v1-predict", "v1-models", "v1-version"],
)
def test_open_endpoints_answer_429_with_retry_after_past_the_anonymous_limit(knn_model, low_limits, call):
    client = APIClient()
    for _ in range(3):
        assert call(client).status_code == 200
    assert_throttled(call(client))


def test_the_limit_counts_per_client_and_per_user(knn_model, low_limits, user):
    anonymous = APIClient()
    for _ in range(3):
        predict(anonymous)
    assert_throttled(predict(anonymous))
    assert predict(APIClient(), REMOTE_ADDR="10.0.0.9").status_code == 200  # another address
    signed_in = APIClient()
    signed_in.force_authenticate(user)
    for _ in range(5):
        assert predict(signed_in).status_code == 200  # users have their own, higher limit
    assert_throttled(predict(signed_in))


def test_a_throttled_predict_logs_nothing(knn_model, low_limits):
    client = APIClient()
    for _ in range(3):
        predict(client)
    before = Prediction.objects.count()
    assert_throttled(predict(client))
    assert Prediction.objects.count() == before


def test_an_unavailable_cache_lets_requests_through_and_counts_them_in_the_process(knn_model, low_limits, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("cache is down")

    monkeypatch.setattr(caches["default"], "add", broken)
    client = APIClient()
    for _ in range(3):
        assert predict(client).status_code == 200
    assert_throttled(predict(client))


@pytest.mark.redis
def test_limits_are_counted_in_redis_shared_by_every_worker(knn_model, settings, frozen_window):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": broker_url(),
            "KEY_PREFIX": f"test-{uuid.uuid4()}",  # private keys: nothing to clear afterwards
        }
    }
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "2/min", "user": "2/min"}}
    client = APIClient()
    assert predict(client).status_code == 200
    assert predict(client).status_code == 200
    assert_throttled(predict(client))
