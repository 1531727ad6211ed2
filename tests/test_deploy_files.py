"""The deployment files name only what exists, and .env.example names every variable.

docker-compose.yml's commands and healthchecks name programs, files and management commands
that exist; the Dockerfile copies only files that exist and leaves local state out; the
requirements are pinned. Whether the stack actually runs is tests/test_stack.py's job.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from django.core.management import get_commands

from tests.support.compose import compose_file
from tests.support.data import REPO

COMPOSE = compose_file()
SERVICES = COMPOSE["services"]
APP_SERVICES = ("web", "worker", "notebook")


def _argv(node) -> list[str]:
    if node is None:
        return []
    if isinstance(node, str):
        return shlex.split(node)
    if node and node[0] in ("CMD", "CMD-SHELL"):
        node = node[1:]
    return list(node)


def _shell_words(argv: list[str]) -> list[list[str]]:
    """Each simple command of an argv, splitting `sh -c "a && b"` into its commands."""
    if argv[:2] == ["sh", "-c"] or (len(argv) == 1 and " " in argv[0]):
        script = argv[-1].replace("$$", "$")
        parts = re.split(r"&&|\|\||;|\{|\}", script)
        return [shlex.split(part) for part in parts if part.strip()]
    return [argv]


def _commands(service: dict) -> list[list[str]]:
    commands = []
    for node in (service.get("command"), (service.get("healthcheck") or {}).get("test")):
        commands.extend(_shell_words(_argv(node)))
    return [words for words in commands if words]


def _repo_path(word: str) -> Path | None:
    """The repository file a command word names, if it names one."""
    value = word.split("=", 1)[1] if word.startswith("--") and "=" in word else word
    if value.startswith("/app/"):
        return REPO / value.removeprefix("/app/")
    if not value.startswith(("/", "-", "$")) and re.search(r"/|\.(py|txt|ipynb|yml|cfg|toml)$", value):
        return REPO / value
    return None


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_command_of_the_service_names_files_and_programs_that_exist(name):
    from django.conf import settings as django_settings

    installed = {"python", "gunicorn", "celery", "jupyter", "sh", "test", "echo", "exec", "exit", "cp"}
    for words in _commands(SERVICES[name]):
        if words[0] == "exec":
            words = words[1:]
        assert words[0] in installed, f"{name}: unknown program {words[0]!r}"
        for word in words:
            path = _repo_path(word)
            if path is not None:
                assert path.exists(), f"{name}: {word} does not exist in the repository"
        if words[:2] == ["python", "manage.py"]:
            assert words[2] in get_commands(), f"{name}: manage.py has no command {words[2]!r}"
        if words[0] == "gunicorn":
            module = words[1].split(":")[0]
            assert (REPO / (module.replace(".", "/") + ".py")).is_file(), f"{name}: no module {module}"
        if words[0] == "celery":
            app = words[words.index("-A") + 1]
            assert (REPO / app / "celery.py").is_file(), f"{name}: no Celery app in {app}/"
    assert django_settings.ROOT_URLCONF  # settings import cleanly for get_commands()


def _env_example() -> set[str]:
    names = set()
    for line in (REPO / ".env.example").read_text().splitlines():
        match = re.match(r"#?\s*([A-Z][A-Z0-9_]+)=", line.strip())
        if match:
            names.add(match.group(1))
    return names


def test_env_example_names_every_variable_of_the_contract_and_the_settings():
    contract = {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "PENGUIN_ARTIFACTS_DIR"}
    contract |= {"DJANGO_SECRET_KEY", "DJANGO_DEBUG", "DJANGO_ALLOWED_HOSTS"}
    settings_source = (REPO / "penguinsite" / "settings.py").read_text()
    in_settings = set(re.findall(r"env_[a-z]+\(\s*\"([A-Z][A-Z0-9_]+)\"", settings_source))
    gunicorn_source = (REPO / "penguinsite" / "gunicorn.conf.py").read_text()
    in_gunicorn = set(re.findall(r"\"(GUNICORN_[A-Z_]+)\"", gunicorn_source))
    missing = (contract | in_settings | in_gunicorn) - _env_example()
    assert not missing, f".env.example does not mention {sorted(missing)}"


def test_every_variable_the_compose_file_interpolates_is_in_env_example():
    text = (REPO / "docker-compose.yml").read_text().replace("$$", "")
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert interpolated <= _env_example(), sorted(interpolated - _env_example())


# --- the image -------------------------------------------------------------------------------


def _stages() -> list[tuple[str, str, list[str]]]:
    """(base image, stage name, instruction lines) for each FROM of the Dockerfile."""
    stages: list[tuple[str, str, list[str]]] = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            stages.append((match.group(1), match.group(2) or "", []))
        elif stages and line.strip() and not line.startswith("#"):
            stages[-1][2].append(line.strip())
    return stages


def test_the_image_build_copies_only_files_that_exist_and_leaves_local_state_out():
    for _, _, lines in _stages():
        for line in lines:
            if line.startswith("COPY") and "--from" not in line:
                sources = line.split()[1:-1]
                for source in sources:
                    if source != ".":
                        assert (REPO / source).exists(), line
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".venv", "var", ".git"} <= ignored


def test_requirements_are_pinned_and_jupyter_only_in_the_notebook_image():
    for name in ("requirements.txt", "requirements-notebook.txt"):
        for line in (REPO / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line), f"{name}: {line} is not pinned"
    assert "jupyter" not in (REPO / "requirements.txt").read_text().lower()
    assert "jupyterlab==" in (REPO / "requirements-notebook.txt").read_text()
