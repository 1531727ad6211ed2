"""docker-compose.yml read as compose reads it: interpolation, env files, commands, healthchecks."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from .processes import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def compose_file() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("plain"):
            return values.get(match.group("plain"), "")
        expression = match.group("braced")
        name_match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", expression)
        if not name_match:
            raise ValueError(f"cannot interpolate ${{{expression}}}")
        name, rest = name_match.group(0), expression[name_match.end() :]
        value = values.get(name)
        if rest.startswith(":-"):
            return value if value else rest[2:]
        if rest.startswith("-"):
            return value if value is not None else rest[1:]
        if rest.startswith((":?", "?")):
            if not value:
                raise AssertionError(f"docker compose would stop: {rest.lstrip(':?') or name + ' is required'}")
            return value
        return value or ""

    return _VARIABLE.sub(replace, text)


def interpolated(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, values)
    if isinstance(node, list):
        return [interpolated(item, values) for item in node]
    if isinstance(node, dict):
        return {key: interpolated(item, values) for key, item in node.items()}
    return node


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped), as compose reads them."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_argv(command: list[str] | str) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def healthcheck_argv(test: list[str] | str) -> list[str]:
    """The command a compose healthcheck ``test`` runs."""
    if isinstance(test, str):
        return ["sh", "-c", test]
    kind, *rest = test
    if kind == "CMD":
        return rest
    if kind == "CMD-SHELL":
        return ["sh", "-c", rest[0]]
    raise ValueError(f"unsupported healthcheck test {test!r}")
