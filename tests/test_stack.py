"""The production stack without Docker: docker-compose.yml's own commands, then the README's tour.

The web service's command (migrate, bootstrap, gunicorn with penguinsite/gunicorn.conf.py)
and the worker service's command (celery) run as compose would run them: the environment
comes from the compose file and .env.example (secrets made up here), against the local
PostgreSQL (a database of this module's own, dropped afterwards) and Redis (a queue of its
own), with a private artifacts folder that web and worker share as the ``artifacts``
volume does. Both services' healthchecks must pass. The tour then runs over HTTP.

Also here: /readyz turns 503 naming the broker when a Redis of the test's own stops.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.support.compose import (
    command_argv,
    compose_file,
    environment_of,
    healthcheck_argv,
    interpolated,
    read_env_file,
)
from tests.support.data import ADELIE, GENTOO
from tests.support.http import Answer, http, metric_samples
from tests.support.models import broker_url
from tests.support.postgres import own_database
from tests.support.processes import BIN, PYTHON, REPO, held_port, log_tail, running, wait_for
from tests.support.redis import private_redis, redis_queue_delete

# Variables of the calling environment that must not leak into the stack: it is configured
# only by the compose file, .env.example and the local stand-ins for the containers' world.
_STRIPPED_PREFIXES = ("DJANGO_", "PENGUIN_", "GUNICORN_", "POSTGRES_", "JUPYTER_", "CELERY_")
_STRIPPED = {"DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"}
_SECRETS = ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "DJANGO_SUPERUSER_PASSWORD", "JUPYTER_TOKEN")


@dataclass
class ComposeStack:
    url: str
    web_env: dict[str, str]
    web_log: Path
    worker_log: Path
    secrets: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None) -> Answer:
        return http(
            method, self.url + path, body, headers={"Accept": "application/json", **(headers or {})}, timeout=30
        )

    def token(self) -> str:
        """A token for the admin user that bootstrap created, as an operator would make one."""
        username = self.web_env.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        result = subprocess.run(
            [PYTHON, "manage.py", "drf_create_token", username],
            cwd=REPO,
            env=self.web_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        match = re.search(r"Generated token (\w+) for user", result.stdout)
        assert result.returncode == 0 and match, result.stderr[-2000:]
        self.secrets.append(match.group(1))
        return match.group(1)

    def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        answer = self.call("GET", "/metrics")
        assert answer.status == 200, answer.status
        return metric_samples(answer.body.decode())


def _total(samples, name: str, **labels: str) -> float:
    return sum(
        value
        for sample_name, sample_labels, value in samples
        if sample_name == name and all(sample_labels.get(key) == wanted for key, wanted in labels.items())
    )


def _environments(compose: dict, *, database_url: str, redis_url: str, port: int, folder: Path, queue: str):
    """web's and worker's environments: calling env (cleaned) + .env + compose + local stand-ins."""
    dotenv = read_env_file()
    for name in _SECRETS:
        dotenv[name] = secrets.token_urlsafe(32).replace("-", "x").replace("_", "y")
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in _STRIPPED and not key.startswith(_STRIPPED_PREFIXES)
    }
    local = {
        # The containers' hosts, volumes and port, as they exist on this machine.
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": redis_url,
        "PENGUIN_ARTIFACTS_DIR": str(folder / "artifacts"),
        "PENGUIN_VAR_DIR": str(folder / "var"),
        "DJANGO_STATIC_ROOT": str(folder / "static"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        # Beside the test suite's own workers on the same Redis database.
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        # A container's HOSTNAME is its host name; the worker healthcheck relies on it.
        "HOSTNAME": socket.gethostname(),
        # `python`, `gunicorn` and `celery` resolve to this virtualenv, as to /opt/venv in the image.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    envs = [
        {**base, **dotenv, **interpolated(environment_of(compose["services"][name]), {**dotenv, **base}), **local}
        for name in ("web", "worker")
    ]
    return dotenv, envs[0], envs[1]


def _passes(argv: list[str], env: dict[str, str]) -> bool:
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def compose_stack() -> Iterator[ComposeStack]:
    compose = compose_file()
    services = compose["services"]
    server = os.environ["DATABASE_URL"]
    database = f"{urlparse(server).path.lstrip('/') or 'penguin'}_stack"
    queue = f"stack-{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory(prefix="penguin-test-compose-") as tmp,
        held_port() as port,
        own_database(server, database) as database_url,
    ):
        folder = Path(tmp)
        dotenv, web_env, worker_env = _environments(
            compose, database_url=database_url, redis_url=broker_url(), port=port, folder=folder, queue=queue
        )
        stack = ComposeStack(
            url=f"http://127.0.0.1:{port}",
            web_env=web_env,
            web_log=folder / "web.log",
            worker_log=folder / "worker.log",
            secrets=[dotenv[name] for name in _SECRETS],
        )
        web_argv = interpolated(command_argv(services["web"]["command"]), dotenv)
        worker_argv = interpolated(command_argv(services["worker"]["command"]), dotenv)
        try:
            with running(web_argv, env=web_env, log=stack.web_log, stop_timeout=40) as web:

                def web_ready() -> bool:
                    assert web.poll() is None, f"web exited with {web.returncode}:\n{log_tail(stack.web_log)}"
                    return stack.call("GET", "/readyz").status == 200

                # The first start migrates and trains the default models before gunicorn listens.
                wait_for(web_ready, timeout=600, what="web to answer /readyz", interval=1.0)
                web_health = healthcheck_argv(interpolated(services["web"]["healthcheck"]["test"], dotenv))
                assert _passes(web_health, web_env), f"web healthcheck failed: {web_health}"

                with running(worker_argv, env=worker_env, log=stack.worker_log, stop_timeout=60) as worker:
                    worker_health = healthcheck_argv(interpolated(services["worker"]["healthcheck"]["test"], dotenv))

                    def worker_healthy() -> bool:
                        assert worker.poll() is None, f"worker exited:\n{log_tail(stack.worker_log)}"
                        return _passes(worker_health, worker_env)

                    wait_for(worker_healthy, timeout=180, what="the worker healthcheck", interval=1.0)
                    yield stack
        finally:
            redis_queue_delete(broker_url(), queue)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_compose_commands_serve_the_readme_tour(compose_stack):
    stack = compose_stack
    before = stack.metrics()
    predictions = 0

    answer = stack.call("GET", "/models")
    assert answer.status == 200, answer.body
    names = [model["name"] for model in answer.json()["available_models"]]
    assert "knn" in names and "randomforest" in names

    request_id = f"tour-{uuid.uuid4().hex[:8]}"
    answer = stack.call("POST", "/classify/knn", GENTOO, headers={"X-Request-ID": request_id})
    assert answer.status == 200, answer.body
    assert answer.json() == {"model": "knn", "species_id": 3, "species_name": "Gentoo"}
    assert answer.headers["x-request-id"] == request_id
    first_version = answer.headers["x-model-version"]
    predictions += 1

    answer = stack.call("POST", "/classify/randomforest", ADELIE)
    assert answer.status == 200 and answer.json()["species_name"] == "Adelie", answer.body
    assert len(answer.headers.get("x-request-id", "")) >= 16  # generated when the client sends none
    predictions += 1

    answer = stack.call("POST", "/classify/knn", {**ADELIE, "island": 4})
    assert answer.status == 400 and "island" in answer.json()["errors"], answer.body
    answer = stack.call("POST", "/classify/nope", ADELIE)
    assert answer.status == 404 and "GET /models" in answer.json()["detail"], answer.body

    answer = stack.call("POST", "/api/v1/training-runs/", {"algorithm": "knn", "params": {}})
    assert answer.status in (401, 403), answer.body
    auth = {"Authorization": f"Token {stack.token()}"}
    # Other parameters than the bootstrap's: a byte-identical retrain registers no new version.
    answer = stack.call(
        "POST", "/api/v1/training-runs/", {"algorithm": "knn", "params": {"n_neighbors": 7}}, headers=auth
    )
    assert answer.status == 202, answer.body
    run_id = answer.json()["id"]

    def run_finished() -> dict | None:
        detail = stack.call("GET", f"/api/v1/training-runs/{run_id}/", headers=auth)
        assert detail.status == 200, detail.body
        return detail.json() if detail.json()["status"] in ("succeeded", "failed") else None

    run = wait_for(run_finished, timeout=300, what=f"training run {run_id} in the worker", interval=0.5)
    assert run["status"] == "succeeded", f"{run['error']}\n{log_tail(stack.worker_log)}"

    def new_version_serves() -> str | None:
        nonlocal predictions
        answer = stack.call("POST", "/classify/knn", GENTOO)
        assert answer.status == 200, answer.body
        predictions += 1
        version = answer.headers["x-model-version"]
        return version if version != first_version else None

    new_version = wait_for(new_version_serves, timeout=60, what="the new knn version to serve", interval=0.2)
    assert all(stack.call("GET", "/readyz").status == 200 for _ in range(5))

    after = stack.metrics()
    counted = _total(after, "penguin_predictions_total") - _total(before, "penguin_predictions_total")
    assert counted == predictions
    assert _total(after, "penguin_predictions_total", model="knn", version=new_version) >= 1
    assert _total(after, "penguin_training_runs", status="succeeded") >= 1


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_compose_services_log_json_lines_with_the_request_id_and_no_secret(compose_stack):
    stack = compose_stack
    request_id = f"logs-{uuid.uuid4().hex[:8]}"
    answer = stack.call("POST", "/classify/knn", GENTOO, headers={"X-Request-ID": request_id})
    assert answer.status == 200, answer.body
    stack.token()  # a token is made, and must not be logged either

    def access_line() -> dict | None:
        lines = stack.web_log.read_text(errors="replace").splitlines()
        start = next(i for i, line in enumerate(lines) if "Starting gunicorn" in line)
        # From gunicorn's start on, every line is a JSON object (migrate/bootstrap print before it).
        records = [json.loads(line) for line in lines[start:]]
        return next(
            (r for r in records if r.get("logger") == "gunicorn.access" and r.get("request_id") == request_id), None
        )

    access = wait_for(access_line, timeout=10, what="the access log line of the request")
    assert access["path"] == "/classify/knn" and access["status"] == 200

    web_log = stack.web_log.read_text(errors="replace")
    worker_log = stack.worker_log.read_text(errors="replace")
    for secret in stack.secrets:
        assert secret not in web_log and secret not in worker_log, "a password or token appears in the logs"
    worker_json = [line for line in worker_log.splitlines() if line.startswith("{")]
    assert worker_json, "the worker wrote no JSON log lines"
    for line in worker_json:
        json.loads(line)


# --- readiness against a Redis of the test's own ---------------------------------------------


@pytest.mark.django_db
def test_readyz_turns_503_naming_the_broker_when_its_redis_stops(client, settings):
    with private_redis() as redis:
        settings.CELERY_BROKER_URL = redis.url

        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "artifacts": "ok"}

        redis.stop()
        down = client.get("/readyz")
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"].startswith("broker unreachable")
    assert body["checks"]["database"] == "ok"
