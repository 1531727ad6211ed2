"""Production settings: `check --deploy` with the production variables, secrets from files."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import pytest

from tests.support.data import REPO

# Warnings `check --deploy` may give with .env.example's values, and why (docs/operations.md,
# "Production (docker compose)"): TLS ends at the reverse proxy, which redirects http.
JUSTIFIED = {"security.W008"}


def production_env(tmp_path, **overrides: str) -> dict[str, str]:
    """A clean environment with .env.example's production values, secrets filled in."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PENGUIN_", "DATABASE_"))}
    for line in (REPO / ".env.example").read_text().splitlines():
        match = re.fullmatch(r"([A-Z][A-Z0-9_]+)=(.*)", line.strip())
        if match:
            env[match.group(1)] = match.group(2)
    key_file = tmp_path / "secret_key"
    key_file.write_text(secrets.token_urlsafe(50) + "\n")
    env.pop("DJANGO_SECRET_KEY")
    env["DJANGO_SECRET_KEY_FILE"] = str(key_file)
    env["PENGUIN_VAR_DIR"] = str(tmp_path / "var")
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )


def issues(result: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"\(([a-z_.]+\.[WE]\d+)\)", result.stdout + result.stderr))


def test_check_deploy_with_the_production_variables_gives_only_justified_warnings(tmp_path):
    result = manage(production_env(tmp_path), "check", "--deploy")
    assert result.returncode == 0, result.stderr
    assert issues(result) <= JUSTIFIED, result.stdout + result.stderr


def test_check_deploy_is_clean_when_django_redirects_to_https_itself(tmp_path):
    result = manage(
        production_env(tmp_path, DJANGO_SECURE_SSL_REDIRECT="1"), "check", "--deploy", "--fail-level", "WARNING"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_debug_and_a_missing_https_setup(tmp_path):
    env = production_env(tmp_path, DJANGO_DEBUG="1", DJANGO_SECURE_COOKIES="0", DJANGO_SECURE_HSTS_SECONDS="0")
    found = issues(manage(env, "check", "--deploy"))
    assert {"security.W018", "security.W004", "security.W012"} <= found


def test_secrets_and_the_database_url_can_come_from_files(tmp_path):
    database_file = tmp_path / "database_url"
    database_file.write_text(f"sqlite:///{tmp_path / 'from-file.sqlite3'}\n")
    env = production_env(tmp_path, DATABASE_URL_FILE=str(database_file))
    env.pop("DATABASE_URL")
    key_file = env["DJANGO_SECRET_KEY_FILE"]
    code = (
        "from django.conf import settings; import pathlib; "
        f"print(settings.SECRET_KEY == pathlib.Path(r'{key_file}').read_text().strip()); "
        "print(settings.DATABASES['default']['NAME'])"
    )
    result = manage(env, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["True", str(tmp_path / "from-file.sqlite3")]


def test_a_secret_file_that_cannot_be_read_stops_start_naming_the_variable(tmp_path):
    env = production_env(tmp_path, DJANGO_SECRET_KEY_FILE=str(tmp_path / "missing"))
    result = manage(env, "check")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY_FILE" in result.stderr


@pytest.mark.django_db
def test_bootstrap_takes_the_admin_password_from_a_file(tmp_path, monkeypatch, django_user_model):
    from django.core.management import call_command

    password_file = tmp_path / "admin_password"
    password_file.write_text("from-a-docker-secret-123\n")
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD_FILE", str(password_file))
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root-admin")

    call_command("bootstrap", "--no-train")

    admin = django_user_model.objects.get(username="root-admin")
    assert admin.is_superuser
    assert admin.check_password("from-a-docker-secret-123")


def test_bad_log_format_stops_start_naming_the_variable(tmp_path):
    result = manage(production_env(tmp_path, PENGUIN_LOG_FORMAT="xml"), "check")
    assert result.returncode != 0
    assert "PENGUIN_LOG_FORMAT" in result.stderr
