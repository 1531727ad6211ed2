"""Redis down: a real redis-server (this test's own) is stopped under the service.

In production one Redis is both the Celery broker and the rate-limit cache, so both point
at the private server here. (The same failures with a broker that is mocked to refuse are
in test_training_runs.py and test_api_training.py; this proves them with a real one.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from django import db
from kombu import pools

from classifier.models import Prediction
from penguinsite.celery import app as celery_app
from tests.support.data import ADELIE
from tests.support.redis import private_redis
from training.models import TrainingRun
from training.services.runs import TrainingQueueUnavailable
from training.start import training_run_start

pytestmark = pytest.mark.django_db(transaction=True)


def _reset_connections(app) -> None:
    """Forget every pooled broker connection: they belong to a server that is gone."""
    pools.reset()
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


@pytest.fixture
def redis_server(settings, monkeypatch):
    """A private redis-server as broker and cache; stopped by the test, removed afterwards."""
    from penguinsite.celery import app

    with private_redis() as redis:
        # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
        monkeypatch.setenv("CELERY_BROKER_URL", redis.url)
        settings.CELERY_BROKER_URL = redis.url
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis.url,
                "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
            }
        }
        _reset_connections(app)
        assert app.conf.broker_write_url == redis.url
        try:
            yield redis
        finally:
            monkeypatch.undo()
            _reset_connections(app)


def start_run(client, **body):
    return client.post("/api/v1/training-runs/", data=json.dumps(body), content_type="application/json")


def test_with_redis_down_classify_answers_training_is_refused_with_503_and_readyz_names_the_broker(
    client, staff_client, knn_model, redis_server
):
    assert client.get("/readyz").status_code == 200
    assert start_run(staff_client, algorithm="knn", name="knn-queued").status_code == 202

    redis_server.stop()

    answer = client.post("/classify/knn", data=ADELIE, content_type="application/json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["species_name"] == "Adelie"
    assert Prediction.objects.filter(pk=answer["X-Prediction-Id"]).exists()

    refused = start_run(staff_client, algorithm="knn", name="knn-refused")
    assert refused.status_code == 503, refused.content
    assert refused.json()["code"] == "queue_unavailable"
    assert "broker is unavailable" in refused.json()["detail"] and "Try again later" in refused.json()["detail"]
    run = TrainingRun.objects.get(model_name="knn-refused")
    assert run.status == TrainingRun.Status.FAILED, "a run the broker never took must not stay queued"
    assert "broker is unavailable" in run.error and run.finished_at is not None

    with pytest.raises(TrainingQueueUnavailable):
        training_run_start(algorithm="knn", model_name="knn-service")
    assert TrainingRun.objects.get(model_name="knn-service").status == TrainingRun.Status.FAILED

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["broker"]
    assert ready.json()["checks"]["broker"].startswith("broker unreachable")
    assert ready.json()["checks"]["database"] == "ok"


def test_when_redis_comes_back_runs_are_queued_again(client, staff_client, knn_model, redis_server):
    redis_server.stop()
    assert start_run(staff_client, algorithm="knn").status_code == 503

    redis_server.start()

    assert client.get("/readyz").status_code == 200
    again = start_run(staff_client, algorithm="knn")
    assert again.status_code == 202, again.content
    assert again.json()["status"] == "queued"
    assert TrainingRun.objects.filter(model_name="knn", status=TrainingRun.Status.FAILED).count() == 1


# --- a hung Redis: accepts connections, never answers ------------------------------------------


@contextlib.contextmanager
def hung(redis) -> Iterator[None]:
    """SIGSTOP the server: the kernel still completes connections, nothing is ever answered."""
    os.kill(redis.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)


def within(seconds: float, call):
    """``call()`` in a thread; fails the test if it has not returned after ``seconds``."""
    done: dict = {}

    def target():
        try:
            done["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            done["error"] = exc
        finally:
            db.connections.close_all()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds:g}s (hung on the broker)"
    if "error" in done:
        raise done["error"]
    return done["value"]


def test_with_redis_hung_starting_a_run_is_a_503_naming_the_broker_and_the_run_is_failed(
    staff_client, knn_model, redis_server
):
    with hung(redis_server):
        refused = within(60, lambda: start_run(staff_client, algorithm="knn", name="knn-hung"))
    assert refused.status_code == 503, refused.content
    assert refused["Content-Type"] == "application/json"
    assert refused.json()["code"] == "queue_unavailable"
    assert "broker is unavailable" in refused.json()["detail"]
    run = TrainingRun.objects.get(model_name="knn-hung")
    assert run.status == TrainingRun.Status.FAILED and "broker is unavailable" in run.error
    # The model is not locked: once Redis answers again the next run is queued.
    _reset_connections(celery_app)
    assert start_run(staff_client, algorithm="knn", name="knn-hung").status_code == 202


def test_with_redis_hung_rate_limits_are_counted_in_the_process_and_the_outage_logged_once(
    client, knn_model, redis_server, settings, caplog
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anon": "5/min"},
    }
    # A cache of its own (a private server's port may have served an earlier test's outage).
    cache = settings.CACHES["default"]
    settings.CACHES = {"default": {**cache, "LOCATION": f"{cache['LOCATION']}?client_name=hung-rate-limits"}}
    with hung(redis_server), caplog.at_level(logging.WARNING, logger="classifier.api.throttling"):
        # The counts live in fixed one-minute windows: keep the 8 requests inside one of them.
        if (left := 60 - time.time() % 60) < 10:
            time.sleep(left + 0.1)
        statuses = [
            client.post("/api/v1/models/knn/predict", data=ADELIE, content_type="application/json").status_code
            for _ in range(8)
        ]
    # Counted here while Redis cannot count: the limit still holds, nobody is refused for the outage.
    assert statuses == [200] * 5 + [429] * 3
    outage_lines = [r for r in caplog.records if "rate limit" in r.getMessage()]
    assert len(outage_lines) == 1, [r.getMessage() for r in outage_lines]
    assert "counted in this process" in outage_lines[0].getMessage()
