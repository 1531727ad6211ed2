"""docker-compose.yml as the compose tool itself reads it (`docker compose config`), with .env.example's
values and the secrets filled in, as an operator's .env would be.

Runs `docker compose` or `docker-compose`, whichever is installed; skipped when neither is.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.compose import COMPOSE_FILE, ENV_EXAMPLE

SECRETS = {
    "DJANGO_SECRET_KEY": "compose-config-secret-" + "k" * 40,
    "POSTGRES_PASSWORD": "dbpassword123",
    "DJANGO_SUPERUSER_PASSWORD": "adminpassword123",
    "JUPYTER_TOKEN": "jupytertoken123",
}


def compose_tool() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return [shutil.which("docker-compose")]
    pytest.skip("neither `docker compose` nor `docker-compose` is installed")


def env_file(values: dict[str, str]) -> str:
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={values[name]}" if name in values and not line.startswith("#") else line)
    return "\n".join(lines) + "\n"


def compose_config(folder: Path, secrets: dict[str, str], *profiles: str) -> subprocess.CompletedProcess:
    shutil.copy(COMPOSE_FILE, folder / "docker-compose.yml")
    (folder / ".env").write_text(env_file(secrets))
    argv = [*compose_tool()]
    for profile in profiles:
        argv += ["--profile", profile]
    return subprocess.run([*argv, "config"], cwd=folder, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    result = compose_config(tmp_path_factory.mktemp("compose"), SECRETS, "notebook")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_the_compose_tool_accepts_the_file_with_the_env_example(config):
    assert {"db", "redis", "web", "worker", "notebook"} <= set(config["services"])
    assert (
        config["services"]["web"]["environment"]["DATABASE_URL"] == "postgres://penguin:dbpassword123@db:5432/penguin"
    )


def test_without_the_secrets_the_compose_tool_refuses_naming_the_variable(tmp_path):
    result = compose_config(tmp_path, {**SECRETS, "DJANGO_SECRET_KEY": ""})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_the_notebook_gets_only_the_variables_it_needs(config):
    environment = config["services"]["notebook"]["environment"]
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY", "JUPYTER_TOKEN", "PENGUIN_ARTIFACTS_DIR"} <= set(environment)
    assert not {"POSTGRES_PASSWORD", "DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_USERNAME"} & set(environment)
    assert "env_file" not in config["services"]["notebook"]


def test_the_notebook_does_not_restart_in_a_loop(config):
    assert config["services"]["notebook"]["restart"] == "no"


def test_the_notebook_volume_does_not_hide_the_images_notebooks(config):
    targets = [_volume_target(volume) for volume in config["services"]["notebook"]["volumes"]]
    assert "/app/training/notebooks" not in targets
    assert "/data/notebooks" in targets
    command = " ".join(config["services"]["notebook"]["command"])
    assert "cp -R /app/training/notebooks/. /data/notebooks/" in command
    assert "--ServerApp.root_dir=/data/notebooks" in command


def test_the_stack_does_not_trust_x_forwarded_for_by_default(config):
    for name in ("web", "worker"):
        assert config["services"][name]["environment"]["PENGUIN_NUM_PROXIES"] == "0"


def _volume_target(volume) -> str:
    if isinstance(volume, dict):
        return volume["target"]
    return volume.split(":")[1]
