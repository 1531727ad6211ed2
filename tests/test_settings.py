"""Start-up configuration: bad environment values stop the process, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.data import REPO
from tests.support.processes import django_start as start


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DJANGO_DEBUG", "maybe"),
        ("DATABASE_URL", "mysql2://nowhere/db"),
        ("CELERY_BROKER_URL", "http://example.invalid"),
        ("PENGUIN_REGISTRY_REFRESH_SECONDS", "soon"),
        ("PENGUIN_MAX_BATCH", "0"),
        ("PENGUIN_PROMOTION_MARGIN", "-1"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(tmp_path, variable, value):
    result = start({variable: value, "PENGUIN_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr


def test_defaults_start_with_sqlite_and_a_generated_secret_key(tmp_path):
    result = start({"PENGUIN_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    assert start({"PENGUIN_VAR_DIR": str(tmp_path)}).returncode == 0
    assert (tmp_path / "secret_key").read_text() == key  # stable across restarts


def test_a_secret_can_come_from_a_file(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s" * 60 + "\n")
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)",
        ],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
            "DJANGO_SETTINGS_MODULE": "penguinsite.settings",
            "DJANGO_SECRET_KEY_FILE": str(secret),
            "PENGUIN_VAR_DIR": str(tmp_path),
        },
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip() == "s" * 60
