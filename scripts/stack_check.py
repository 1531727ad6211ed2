"""Run docker-compose.yml's own commands without Docker and drive the README's tour over HTTP.

    .venv/bin/python scripts/stack_check.py [--database-url URL] [--redis-url URL] [--port-range 18500-18599]

What the compose file does, against the local PostgreSQL and Redis:

1. creates a database of its own (dropped again at the end) and a private artifacts folder
   that web and worker share, as the ``artifacts`` volume does;
2. starts the web service's command from docker-compose.yml (migrate, bootstrap, gunicorn
   with penguinsite/gunicorn.conf.py) on a free 127.0.0.1 port, with the environment the
   compose file and .env.example give it, and waits for the web healthcheck to pass;
3. starts the worker service's command (celery) and waits for the worker healthcheck;
4. drives the tour: GET /models, POST /classify/<name>, errors, a training run through
   ``POST /api/v1/training-runs/`` with a staff token, polled to success through the worker,
   classification by the new version (X-Model-Version), then checks that /metrics counted
   the tour's predictions and run, that the logs are JSON lines with the request id, and
   that no password or token reached the logs;
5. stops everything it started (bounded in time) and removes what it created.

Prints what it does and a JSON summary; exits 0 when every step passed. CI runs it through
tests/test_stack.py; ``make stack-check`` runs it by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
VENV_BIN = Path(sys.executable).parent

GENTOO = {
    "island": "Biscoe",
    "bill_length_mm": 46.1,
    "bill_depth_mm": 13.2,
    "flipper_length_mm": 211,
    "body_mass_g": 4500,
    "sex": "female",
    "year": 2007,
}
ADELIE = {
    "island": 1,
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181,
    "body_mass_g": 3750,
    "sex": 1,
    "year": 2007,
}

# Variables of the calling environment that must not leak into the stack: it is configured
# only by the compose file, .env.example and the local overrides below.
_STRIPPED_PREFIXES = ("DJANGO_", "PENGUIN_", "GUNICORN_", "POSTGRES_", "JUPYTER_", "CELERY_")
_STRIPPED = {"DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "DJANGO_SETTINGS_MODULE"}


class StackCheckFailed(Exception):
    pass


def log(message: str) -> None:
    print(f"[stack-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- compose file --------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


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
            raise StackCheckFailed(f"cannot interpolate ${{{expression}}}")
        name, rest = name_match.group(0), expression[name_match.end() :]
        value = values.get(name)
        if rest.startswith(":-"):
            return value if value else rest[2:]
        if rest.startswith("-"):
            return value if value is not None else rest[1:]
        if rest.startswith(":?") or rest.startswith("?"):
            if not value:
                raise StackCheckFailed(f"docker compose would stop: {rest.lstrip(':?') or name + ' is required'}")
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


def read_env_file(path: Path) -> dict[str, str]:
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


def healthcheck_argv(test: list[str] | str) -> list[str]:
    """The command a compose healthcheck ``test`` runs."""
    if isinstance(test, str):
        return ["sh", "-c", test]
    kind, *rest = test
    if kind == "CMD":
        return rest
    if kind == "CMD-SHELL":
        return ["sh", "-c", rest[0]]
    raise StackCheckFailed(f"unsupported healthcheck test {test!r}")


def command_argv(command: list[str] | str) -> list[str]:
    if isinstance(command, str):
        import shlex

        return shlex.split(command)
    return list(command)


# --- resources -----------------------------------------------------------------------------


def free_port(port_range: tuple[int, int]) -> int:
    for port in range(port_range[0], port_range[1] + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise StackCheckFailed(f"no free port in {port_range[0]}-{port_range[1]}")


def with_database(url: str, name: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{name}"))


def database_create(server_url: str, name: str) -> None:
    import psycopg2
    from psycopg2 import sql

    connection = psycopg2.connect(with_database(server_url, "postgres"), connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


def database_drop(server_url: str, name: str) -> None:
    import psycopg2
    from psycopg2 import sql

    connection = psycopg2.connect(with_database(server_url, "postgres"), connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        connection.close()


def redis_queue_delete(redis_url: str, queue: str) -> None:
    from redis import Redis

    client = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.delete(queue, f"_kombu.binding.{queue}")
    finally:
        client.close()


@dataclass
class Service:
    """A process started from a compose service's command, in its own process group."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    _log_file: Any = None

    def start(self, env: dict[str, str]) -> None:
        self._log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.argv, cwd=REPO, env=env, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        log(f"{self.name}: started pid {self.process.pid}: {' '.join(self.argv)[:160]}")

    def exited(self) -> int | None:
        return self.process.poll() if self.process else None

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM (what docker compose stop sends), then SIGKILL the group after the grace period."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_seconds)
                log(f"{self.name}: stopped (exit {self.process.returncode})")
            except subprocess.TimeoutExpired:
                log(f"{self.name}: did not stop within {grace_seconds:.0f}s; killing its process group")
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # leftovers (gunicorn/celery children)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self._log_file:
            self._log_file.close()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# --- HTTP ------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    seconds: float


@dataclass
class Client:
    base: str
    sent: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw, response_headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, response_headers = error.code, error.read(), error.headers
        seconds = time.perf_counter() - started
        self.sent.append(f"{method} {path} -> {status}")
        content_type = response_headers.get("Content-Type", "")
        parsed: Any = raw.decode("utf-8", "replace")
        if "json" in content_type:
            try:
                parsed = json.loads(raw)
            except ValueError:
                pass
        return Answer(status, {key.lower(): value for key, value in response_headers.items()}, parsed, seconds)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise StackCheckFailed(message)


def wait_for(description: str, probe, deadline: float, interval: float = 0.5, services: list[Service] = ()):
    """Call ``probe`` until it returns a true value or the deadline passes; fail fast if a service died."""
    last_error = ""
    while True:
        for service in services:
            code = service.exited()
            if code is not None:
                raise StackCheckFailed(f"{service.name} exited with {code} while waiting for {description}")
        try:
            result = probe()
            if result:
                return result
        except (OSError, StackCheckFailed, subprocess.TimeoutExpired) as exc:
            last_error = f" (last: {exc})"
        if time.monotonic() > deadline:
            raise StackCheckFailed(f"timed out waiting for {description}{last_error}")
        time.sleep(interval)


def run_command(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


# --- the check -------------------------------------------------------------------------------


@dataclass
class Options:
    database_url: str
    redis_url: str
    port_range: tuple[int, int]
    timeout: float
    keep: bool


class StackCheck:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.deadline = time.monotonic() + options.timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="penguin-stack-"))
        self.database = f"{urlparse(options.database_url).path.lstrip('/') or 'penguin'}_stack"
        self.queue = f"stack-check-{os.getpid()}"
        self.summary: dict[str, Any] = {"database": self.database, "queue": self.queue}
        self.secrets: list[str] = []
        self.services: list[Service] = []
        self.database_created = False

    def step_deadline(self, seconds: float) -> float:
        return min(self.deadline, time.monotonic() + seconds)

    # .. environment ..

    def environment(self, compose: dict[str, Any], port: int) -> tuple[dict[str, str], dict[str, str]]:
        """The web and worker environments: calling env (cleaned) + .env + compose + local overrides."""
        dotenv = read_env_file(ENV_EXAMPLE)
        for name in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "DJANGO_SUPERUSER_PASSWORD", "JUPYTER_TOKEN"):
            dotenv[name] = secrets.token_urlsafe(32).replace("-", "x").replace("_", "y")
            self.secrets.append(dotenv[name])
        base = {
            key: value
            for key, value in os.environ.items()
            if key not in _STRIPPED and not key.startswith(_STRIPPED_PREFIXES)
        }
        local = {
            # The containers' hosts, volumes and port, as they exist on this machine.
            "DATABASE_URL": with_database(self.options.database_url, self.database),
            "CELERY_BROKER_URL": self.options.redis_url,
            "PENGUIN_ARTIFACTS_DIR": str(self.workdir / "artifacts"),
            "PENGUIN_VAR_DIR": str(self.workdir / "var"),
            "DJANGO_STATIC_ROOT": str(self.workdir / "static"),
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": "2",
            # Beside the test suite's own workers on the same Redis database.
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            # A container's HOSTNAME is its host name; the worker healthcheck relies on it.
            "HOSTNAME": socket.gethostname(),
            # `python`, `gunicorn` and `celery` resolve to this virtualenv, as to /opt/venv in the image.
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        envs = []
        for name in ("web", "worker"):
            service_env = interpolated(environment_of(compose["services"][name]), {**dotenv, **base})
            envs.append({**base, **dotenv, **service_env, **local})
        self.dotenv = dotenv
        return envs[0], envs[1]

    # .. steps ..

    def run(self) -> None:
        compose = yaml.safe_load(COMPOSE_FILE.read_text())
        services = compose["services"]
        port = free_port(self.options.port_range)
        web_env, worker_env = self.environment(compose, port)
        self.summary["port"] = port
        interpolation = {**self.dotenv}

        log(f"database {self.database}: creating")
        database_create(self.options.database_url, self.database)
        self.database_created = True

        web = Service(
            "web", interpolated(command_argv(services["web"]["command"]), interpolation), self.workdir / "web.log"
        )
        worker = Service(
            "worker",
            interpolated(command_argv(services["worker"]["command"]), interpolation),
            self.workdir / "worker.log",
        )
        self.services = [web, worker]
        client = Client(f"http://127.0.0.1:{port}")

        started = time.monotonic()
        web.start(web_env)
        wait_for(
            "web /readyz",
            lambda: client.call("GET", "/readyz").status == 200,
            self.step_deadline(600),
            interval=1.0,
            services=[web],
        )
        self.summary["web_ready_seconds"] = round(time.monotonic() - started, 1)
        log(f"web: ready after {self.summary['web_ready_seconds']}s (migrate, bootstrap, gunicorn)")
        web_health = healthcheck_argv(interpolated(services["web"]["healthcheck"]["test"], interpolation))
        result = run_command(web_health, web_env, timeout=30)
        expect(result.returncode == 0, f"web healthcheck failed: {result.stdout} {result.stderr}")
        log(f"web healthcheck passed: {' '.join(web_health)}")

        started = time.monotonic()
        worker.start(worker_env)
        worker_health = healthcheck_argv(interpolated(services["worker"]["healthcheck"]["test"], interpolation))
        wait_for(
            "the worker healthcheck",
            lambda: run_command(worker_health, worker_env, timeout=60).returncode == 0,
            self.step_deadline(180),
            interval=1.0,
            services=[worker],
        )
        self.summary["worker_ready_seconds"] = round(time.monotonic() - started, 1)
        log(f"worker healthcheck passed after {self.summary['worker_ready_seconds']}s: {' '.join(worker_health)}")

        self.tour(client, web_env)
        self.check_logs(web, worker)

    def tour(self, client: Client, env: dict[str, str]) -> None:
        predictions = 0

        answer = client.call("GET", "/models")
        expect(answer.status == 200, f"GET /models: {answer.status} {answer.body}")
        names = [model["name"] for model in answer.body["available_models"]]
        expect("knn" in names and "randomforest" in names, f"GET /models lists {names}")
        log(f"GET /models: {', '.join(names)}")

        request_id = f"stack-check-{os.getpid()}"
        answer = client.call("POST", "/classify/knn", GENTOO, headers={"X-Request-ID": request_id})
        expect(answer.status == 200, f"POST /classify/knn: {answer.status} {answer.body}")
        expect(answer.body == {"model": "knn", "species_id": 3, "species_name": "Gentoo"}, f"knn said {answer.body}")
        expect(answer.headers.get("x-request-id") == request_id, "X-Request-ID was not echoed")
        first_version = answer.headers.get("x-model-version")
        expect(bool(first_version), "no X-Model-Version header")
        predictions += 1
        self.request_id = request_id
        log(f"POST /classify/knn: Gentoo by v{first_version}")

        answer = client.call("POST", "/classify/randomforest", ADELIE)
        expect(answer.status == 200 and answer.body["species_name"] == "Adelie", f"randomforest: {answer.body}")
        expect(len(answer.headers.get("x-request-id", "")) >= 16, "no generated X-Request-ID")
        predictions += 1

        answer = client.call("POST", "/classify/knn", {**ADELIE, "island": 4})
        expect(answer.status == 400 and "island" in answer.body.get("errors", {}), f"island 4: {answer.body}")
        answer = client.call("POST", "/classify/nope", ADELIE)
        expect(answer.status == 404 and "GET /models" in answer.body.get("detail", ""), f"unknown model: {answer.body}")
        log("errors: 400 naming island, 404 pointing to GET /models")

        answer = client.call("POST", "/api/v1/training-runs/", {"algorithm": "knn", "params": {}})
        expect(answer.status in (401, 403), f"anonymous training run: {answer.status} {answer.body}")

        username = env.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        result = run_command([sys.executable, "manage.py", "drf_create_token", username], env, timeout=120)
        match = re.search(r"Generated token (\w+) for user", result.stdout)
        expect(result.returncode == 0 and match is not None, f"drf_create_token failed: {result.stderr[-500:]}")
        token = match.group(1)
        self.secrets.append(token)
        auth = {"Authorization": f"Token {token}"}

        started = time.monotonic()
        answer = client.call("POST", "/api/v1/training-runs/", {"algorithm": "knn", "params": {}}, headers=auth)
        expect(answer.status == 202, f"POST /api/v1/training-runs/: {answer.status} {answer.body}")
        run_id = answer.body["id"]
        log(f"training run {run_id}: {answer.body.get('status')}")

        def run_finished():
            detail = client.call("GET", f"/api/v1/training-runs/{run_id}/", headers=auth)
            expect(detail.status == 200, f"GET training run: {detail.status} {detail.body}")
            return detail.body if detail.body.get("status") in ("succeeded", "failed") else None

        run = wait_for(f"training run {run_id}", run_finished, self.step_deadline(300), interval=0.5)
        expect(run["status"] == "succeeded", f"training run failed: {run.get('error')}")
        self.summary["training_run_seconds"] = round(time.monotonic() - started, 1)
        log(f"training run {run_id}: succeeded in {self.summary['training_run_seconds']}s through the worker")

        def new_version_serves():
            nonlocal predictions
            answer = client.call("POST", "/classify/knn", GENTOO)
            expect(answer.status == 200, f"POST /classify/knn: {answer.status} {answer.body}")
            predictions += 1
            version = answer.headers.get("x-model-version")
            return version if version != first_version else None

        new_version = wait_for("the new knn version to serve", new_version_serves, self.step_deadline(60))
        log(f"POST /classify/knn: now answered by v{new_version} (was v{first_version})")
        self.summary.update(first_version=first_version, new_version=new_version)

        readyz = [client.call("GET", "/readyz") for _ in range(20)]
        expect(all(answer.status == 200 for answer in readyz), "readyz not 200")
        times = sorted(answer.seconds * 1000 for answer in readyz)
        self.summary["readyz_ms"] = {"median": round(statistics.median(times), 2), "max": round(times[-1], 2)}
        self.summary["readyz_body"] = readyz[-1].body

        answer = client.call("GET", "/metrics")
        expect(answer.status == 200, f"GET /metrics: {answer.status}")
        samples = metric_samples(answer.body if isinstance(answer.body, str) else json.dumps(answer.body))
        counted = sum(value for name, labels, value in samples if name == "penguin_predictions_total")
        by_new = sum(
            value
            for name, labels, value in samples
            if name == "penguin_predictions_total"
            and labels.get("model") == "knn"
            and labels.get("version") == new_version
        )
        succeeded = sum(
            value
            for name, labels, value in samples
            if name == "penguin_training_runs" and labels.get("status") == "succeeded"
        )
        classify_requests = sum(
            value
            for name, labels, value in samples
            if name == "penguin_http_requests_total" and labels.get("route") == "/classify/<str:name>"
        )
        expect(counted == predictions, f"/metrics counted {counted} predictions; the tour made {predictions}")
        expect(by_new >= 1, f"/metrics has no prediction by knn v{new_version}")
        expect(succeeded >= 1, "/metrics shows no succeeded training run")
        expect(classify_requests >= predictions + 2, f"/metrics counted {classify_requests} classify requests")
        self.summary["metrics"] = {
            "predictions": counted,
            "predictions_by_new_version": by_new,
            "training_runs_succeeded": succeeded,
            "classify_requests": classify_requests,
        }
        log(f"/metrics: {counted:.0f} predictions (tour: {predictions}), {succeeded:.0f} succeeded runs")
        self.summary["requests"] = len(client.sent)

    def check_logs(self, web: Service, worker: Service) -> None:
        web_log = web.log_path.read_text(errors="replace")
        worker_log = worker.log_path.read_text(errors="replace")
        for secret in self.secrets:
            expect(secret not in web_log and secret not in worker_log, "a password or token appears in the logs")
        # After gunicorn starts, every line is a JSON object (migrate/bootstrap print before it).
        lines = web_log.splitlines()
        start = next((i for i, line in enumerate(lines) if "Starting gunicorn" in line), None)
        expect(start is not None, "gunicorn's start line not found in the web log")
        records = []
        for line in lines[start:]:
            try:
                records.append(json.loads(line))
            except ValueError:
                raise StackCheckFailed(f"web log line is not JSON: {line[:200]}") from None
        access = [r for r in records if r.get("logger") == "gunicorn.access" and r.get("request_id") == self.request_id]
        expect(bool(access), "no access log line carries the tour's request id")
        expect(access[0].get("path") == "/classify/knn" and access[0].get("status") == 200, f"access line: {access[0]}")
        worker_json = [line for line in worker_log.splitlines() if line.startswith("{")]
        expect(bool(worker_json), "the worker wrote no JSON log lines")
        for line in worker_json:
            json.loads(line)
        self.summary["log_lines"] = {"web_json": len(records), "worker_json": len(worker_json)}
        log(f"logs: {len(records)} JSON lines from web, {len(worker_json)} from worker; no secret in them")

    def cleanup(self) -> None:
        for service in reversed(self.services):
            try:
                service.stop(grace_seconds=40 if service.name == "web" else 60)
            except Exception as exc:  # keep cleaning up
                log(f"{service.name}: stop failed: {exc}")
        if self.database_created:
            try:
                database_drop(self.options.database_url, self.database)
                log(f"database {self.database}: dropped")
            except Exception as exc:
                log(f"database {self.database}: drop failed: {exc}")
        try:
            redis_queue_delete(self.options.redis_url, self.queue)
        except Exception as exc:
            log(f"redis queue {self.queue}: cleanup failed: {exc}")
        if self.options.keep:
            log(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def default_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if urlparse(url).scheme in {"postgres", "postgresql", "pgsql"}:
        return url
    return "postgres://postgres@127.0.0.1:5432/penguin"


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=default_database_url(),
        help="a PostgreSQL URL; the check uses a database named <its name>_stack on that server "
        "(default: DATABASE_URL when it is PostgreSQL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        help="the Redis broker (default: CELERY_BROKER_URL or REDIS_URL); the check uses its own queue there",
    )
    parser.add_argument("--port-range", default="18500-18599", help="where to look for a free port for gunicorn")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole check (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, artifacts)")
    args = parser.parse_args(argv)
    low, _, high = args.port_range.partition("-")
    return Options(
        database_url=args.database_url,
        redis_url=args.redis_url,
        port_range=(int(low), int(high or low)),
        timeout=args.timeout,
        keep=args.keep,
    )


def main(argv: list[str]) -> int:
    options = parse_args(argv)

    def terminate(signum, frame):  # a SIGTERM from the caller still runs the cleanup
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    check = StackCheck(options)
    started = time.monotonic()
    ok = False
    try:
        check.run()
        ok = True
    except (Exception, KeyboardInterrupt) as exc:
        log(f"FAILED: {exc}" if isinstance(exc, StackCheckFailed) else f"FAILED: {traceback.format_exc()}")
        for service in check.services:
            print(f"--- last lines of {service.name} ---\n{service.tail()}", flush=True)
    finally:
        check.cleanup()
    check.summary["seconds"] = round(time.monotonic() - started, 1)
    check.summary["ok"] = ok
    print("STACK CHECK " + ("OK " if ok else "FAILED ") + json.dumps(check.summary, default=str), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
