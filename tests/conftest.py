"""Shared fixtures: a private artifacts folder per test, trained models, API clients, users, a broker.

Helpers and example data live in ``tests/support/``; test modules import them from there,
never from each other or from this file.
"""

from __future__ import annotations

import os

import pytest

from classifier.serving import loaded_cache
from classifier.serving_registry import live_registry
from tests.support import service
from tests.support.data import DATA
from tests.support.models import broker_url, ml_engineers_group, register_result, uses_postgres


def pytest_collection_modifyitems(config, items):
    """Integration tests run whenever their service is configured (always in CI), else skip."""
    in_ci = bool(os.environ.get("CI"))
    for item in items:
        if "postgres" in item.keywords and not uses_postgres():
            if in_ci:
                raise pytest.UsageError("CI must run the postgres tests: set DATABASE_URL to PostgreSQL")
            item.add_marker(pytest.mark.skip(reason="DATABASE_URL is not PostgreSQL"))
        if "redis" in item.keywords and not broker_url():
            if in_ci:
                raise pytest.UsageError("CI must run the redis tests: set CELERY_BROKER_URL")
            item.add_marker(pytest.mark.skip(reason="no CELERY_BROKER_URL/REDIS_URL"))


@pytest.fixture(autouse=True)
def artifacts_dir(tmp_path, settings):
    """Every test gets an empty artifacts folder and a cold model cache."""
    folder = tmp_path / "artifacts"
    settings.PENGUIN_ARTIFACTS_DIR = folder
    settings.PENGUIN_REGISTRY_REFRESH_SECONDS = 0
    settings.CELERY_TASK_ALWAYS_EAGER = True
    loaded_cache.clear()
    live_registry.invalidate()
    yield folder
    loaded_cache.clear()
    live_registry.invalidate()


@pytest.fixture(scope="session")
def trained_results():
    """The five default algorithms trained once per session (no database involved)."""
    from core.datasets import dataset_load
    from training.catalogue import CATALOGUE
    from training.trainer import train

    dataset = dataset_load(DATA)
    return {name: train(algorithm=name, dataset=dataset) for name in CATALOGUE}


@pytest.fixture
def default_models(db, trained_results):
    """The five default models registered as version 1 and active."""
    return {name: register_result(name, result) for name, result in trained_results.items()}


@pytest.fixture
def knn_model(db, trained_results):
    return register_result("knn", trained_results["knn"])


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def user(db, django_user_model):
    return django_user_model.objects.create_user(username="reader", password="reader-pass-123")


@pytest.fixture
def staff_user(db, django_user_model):
    staff = django_user_model.objects.create_user(username="staff", password="staff-pass-123", is_staff=True)
    staff.groups.add(ml_engineers_group())
    return staff


@pytest.fixture
def user_client(user):
    """An API client signed in as a user who is not staff."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def staff_client(staff_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(staff_user)
    return client


@pytest.fixture
def with_broker(settings, monkeypatch):
    """A broker is configured: runs are queued for a worker. The sends are recorded here, not made."""
    from training import tasks

    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent: list[dict] = []
    monkeypatch.setattr(tasks.train_model_task, "apply_async", lambda *args, **kwargs: sent.append(kwargs))
    return sent


@pytest.fixture(scope="session")
def live_stack():
    """One live service for the whole session (gunicorn, private PostgreSQL and Redis): ``knn``
    trained, a staff user with a token.

    Tests that use it must leave it serving (a test that stops PostgreSQL starts it again)
    and must not rely on what other tests trained; each trains its own model names.
    """
    with service.live_stack() as stack:
        yield stack
