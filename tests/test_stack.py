"""The production stack without Docker: the compose file's own commands, its shape, readiness.

- scripts/stack_check.py runs docker-compose.yml's web and worker commands against
  PostgreSQL and Redis and drives the README's tour (always in CI);
- /readyz turns 503 naming the broker when a Redis (private to the test) stops;
- docker-compose.yml, the Dockerfile, .dockerignore and .env.example are read and
  checked against the repository.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("web", "worker", "notebook")
# The helper's own ports (HELPERS.md); CI has the machine to itself.
PORTS = range(18500, 18600)


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --- the stack, end to end -------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_compose_commands_serve_the_readme_tour_on_postgres_and_redis():
    from tests.conftest import broker_url

    command = [
        sys.executable,
        str(REPO / "scripts" / "stack_check.py"),
        "--database-url",
        os.environ["DATABASE_URL"],
        "--redis-url",
        broker_url(),
        "--port-range",
        f"{PORTS.start}-{PORTS.stop - 1}",
        "--timeout",
        "840",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the script stops what it started, then exits
        output, _ = process.communicate(timeout=150)
    assert process.returncode == 0, output
    assert "STACK CHECK OK" in output


# --- readiness against a Redis of the test's own ---------------------------------------------


@pytest.fixture
def private_redis():
    """A redis-server on a free port, no persistence; yields (url, stop)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have redis-server to test readiness")
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
        wait_until(lambda: not answers(), 10, "redis to stop")

    try:
        wait_until(answers, 10, "redis to answer")
        yield f"redis://127.0.0.1:{port}/0", stop
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.django_db
def test_readyz_turns_503_naming_the_broker_when_its_redis_stops(client, settings, private_redis):
    url, stop_redis = private_redis
    settings.CELERY_BROKER_URL = url

    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "artifacts": "ok"}

    stop_redis()
    down = client.get("/readyz")
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"].startswith("broker unreachable")
    assert body["checks"]["database"] == "ok"


# --- docker-compose.yml ------------------------------------------------------------------------


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

    installed = {"python", "gunicorn", "celery", "jupyter", "sh", "test", "echo", "exec", "exit"}
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


def test_web_runs_migrations_then_gunicorn_with_the_config_file():
    script = " ".join(_argv(SERVICES["web"]["command"]))
    assert re.search(
        r"manage\.py migrate --noinput && .*exec gunicorn penguinsite\.wsgi -c penguinsite/gunicorn\.conf\.py", script
    )


def test_only_the_proxy_and_notebook_publish_ports():
    publishing = {name for name, service in SERVICES.items() if service.get("ports")}
    assert publishing == {"proxy", "notebook"}
    assert SERVICES["notebook"]["profiles"] == ["notebook"]


def test_web_and_worker_share_the_artifacts_volume():
    def artifacts_mount(service):
        mounts = [volume.split(":") for volume in service["volumes"]]
        target = service["environment"]["PENGUIN_ARTIFACTS_DIR"]
        return next(source for source, mount_point, *_ in mounts if mount_point == target)

    assert artifacts_mount(SERVICES["web"]) == artifacts_mount(SERVICES["worker"]) == "artifacts"
    assert artifacts_mount(SERVICES["notebook"]) == "artifacts"
    assert "artifacts" in COMPOSE["volumes"]
    assert "pgdata" in COMPOSE["volumes"] and any(v.startswith("pgdata:") for v in SERVICES["db"]["volumes"])


def test_databases_are_postgres_16_and_redis_7_with_healthchecks():
    assert SERVICES["db"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(SERVICES["db"]["healthcheck"]["test"])
    assert SERVICES["redis"]["image"] == "redis:7"
    assert "ping" in " ".join(SERVICES["redis"]["healthcheck"]["test"])


def test_web_and_worker_wait_for_healthy_services_and_check_their_own_health():
    for name in ("web", "worker"):
        assert SERVICES[name]["depends_on"]["db"]["condition"] == "service_healthy"
        assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert _argv(SERVICES["web"]["healthcheck"]["test"]) == ["python", "scripts/healthcheck.py", "/readyz"]
    assert "inspect ping" in " ".join(_argv(SERVICES["worker"]["healthcheck"]["test"]))


def test_long_running_services_restart():
    for name in ("db", "redis", "web", "worker"):
        assert SERVICES[name]["restart"] == "unless-stopped", name


def test_notebook_token_comes_from_the_environment_never_a_literal():
    service = SERVICES["notebook"]
    text = " ".join(_argv(service["command"]))
    assert "token=" not in text.lower()
    assert "JUPYTER_TOKEN" in text  # it refuses to start without one
    assert "JUPYTER_TOKEN" not in service["environment"]  # comes from .env, not from the file
    assert service["build"]["target"] == "notebook"


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


def test_the_image_is_python_312_slim_multi_stage_and_runs_unprivileged():
    stages = _stages()
    names = {name for _, name, _ in stages}
    assert stages[0][0] == "python:3.12-slim"
    assert {base for base, _, _ in stages} <= {"python:3.12-slim"} | names
    final_lines = [line for _, _, lines in stages for line in lines]
    users = [line.split()[1] for line in final_lines if line.startswith("USER")]
    assert users and users[-1] not in {"root", "0"}
    app = next(lines for _, name, lines in stages if name == "app")
    assert any("COPY --from=build /opt/venv" in line for line in app)
    assert any("collectstatic" in line for line in app)
    assert not any(re.search(r"apt-get install|gcc|build-essential", line) for line in final_lines)
    for service in APP_SERVICES:
        assert SERVICES[service]["build"]["target"] in names


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
