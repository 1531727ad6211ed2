"""Shared fixtures: a private artifacts folder per test, trained models, API clients, users."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from classifier.serving import loaded_cache
from classifier.serving_registry import live_registry
from core.encoding import EXAMPLES

from .servers import live_stack  # noqa: F401  (session fixture: gunicorn + private PostgreSQL and Redis)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "penguins.csv"
DATA_V1 = REPO / "data" / "penguins_v1.csv"

ADELIE, CHINSTRAP, GENTOO = (EXAMPLES[name] for name in ("Adelie", "Chinstrap", "Gentoo"))


def uses_postgres() -> bool:
    return django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def broker_url() -> str:
    return os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or ""


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


def register_result(name: str, result, *, activate: bool = True):
    from classifier.services.registry import model_version_register
    from training.services.promotion import new_version_info

    return model_version_register(
        model_name=name,
        pipeline=result.pipeline,
        info=new_version_info(result),
        activate=activate,
        triggered_by="test fixture",
    )


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
    return django_user_model.objects.create_user(username="staff", password="staff-pass-123", is_staff=True)


@pytest.fixture
def staff_client(staff_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(staff_user)
    return client
