"""Which database and broker the suite runs on, and a trained result registered as a version."""

from __future__ import annotations

import os
from urllib.parse import quote


def uses_postgres() -> bool:
    from django.conf import settings

    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def broker_url() -> str:
    """The Redis the suite may use (CELERY_BROKER_URL or REDIS_URL); empty when none is set."""
    return os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or ""


def suite_database_url() -> str:
    """The URL of pytest-django's test database, for a subprocess's DATABASE_URL."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    return f"postgres://{auth}@{host}:{db.get('PORT') or 5432}/{db['NAME']}"


def register_result(name: str, result, *, activate: bool = True):
    """Register a trainer result as the next version of ``name`` (active unless told otherwise)."""
    from classifier.services.registry import model_version_register
    from training.services.promotion import new_version_info

    return model_version_register(
        model_name=name,
        pipeline=result.pipeline,
        info=new_version_info(result),
        activate=activate,
        triggered_by="test fixture",
    )


def ml_engineers_group():
    """The group a data migration ships (made again after a transactional test emptied the tables)."""
    import importlib

    from django.apps import apps
    from django.contrib.auth.models import Group

    if not Group.objects.filter(name="ML engineers").exists():
        importlib.import_module("training.migrations.0005_ml_engineers_group").create_group(apps, None)
    return Group.objects.get(name="ML engineers")
