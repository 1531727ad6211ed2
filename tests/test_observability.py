"""What operators see: /metrics, request ids, JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import timedelta

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from penguinsite.logs import GunicornJsonLogger, JsonFormatter, request_id_bound
from tests.support.data import ADELIE, CHINSTRAP, GENTOO, REPO


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """GET /metrics, parsed: {(sample name, labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before, after, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


# --- /metrics ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_count_each_prediction_by_model_version_and_species(client, knn_model):
    before = scrape(client)
    response = client.post("/classify/knn", GENTOO, content_type="application/json")
    assert response.status_code == 200
    after = scrape(client)
    labels = {"model": "knn", "version": str(knn_model.number), "species": "Gentoo"}
    assert delta(before, after, "penguin_predictions_total", **labels) == 1


@pytest.mark.django_db
def test_a_batch_is_counted_per_row_and_species(client, knn_model):
    from classifier.predict import prediction_make
    from core.encoding import parse_rows

    rows = [ADELIE] * 3 + [CHINSTRAP] * 2 + [GENTOO]
    before = scrape(client)
    outcome = prediction_make(model_name="knn", matrix=parse_rows(rows), endpoint="predict")
    assert outcome.species_names() == ["Adelie"] * 3 + ["Chinstrap"] * 2 + ["Gentoo"]
    after = scrape(client)
    for species, count in {"Adelie": 3, "Chinstrap": 2, "Gentoo": 1}.items():
        labels = {"model": "knn", "version": "1", "species": species}
        assert delta(before, after, "penguin_predictions_total", **labels) == count


@pytest.mark.django_db
def test_metrics_count_and_time_requests_by_url_pattern_and_status(client, knn_model):
    before = scrape(client)
    client.post("/classify/knn", GENTOO, content_type="application/json")
    client.post("/classify/nope", GENTOO, content_type="application/json")
    after = scrape(client)
    route = "/classify/<str:name>"
    for status in ("200", "404"):
        labels = {"method": "POST", "route": route, "status": status}
        assert delta(before, after, "penguin_http_requests_total", **labels) == 1
    timed = {"method": "POST", "route": route}
    count = "penguin_http_request_duration_seconds_count"
    assert delta(before, after, count, **timed) == 2


def test_unknown_paths_share_one_label_rather_than_one_each(client):
    before = scrape(client)
    client.get("/no/such/page-1")
    client.get("/no/such/page-2")
    after = scrape(client)
    labels = {"method": "GET", "route": "unmatched", "status": "404"}
    assert delta(before, after, "penguin_http_requests_total", **labels) == 2


@pytest.mark.django_db
def test_model_cache_counts_one_load_then_hits(client, knn_model):
    before = scrape(client)
    for _ in range(3):
        assert client.post("/classify/knn", ADELIE, content_type="application/json").status_code == 200
    after = scrape(client)
    assert delta(before, after, "penguin_model_cache_loads_total") == 1
    assert delta(before, after, "penguin_model_cache_hits_total") >= 2


@pytest.mark.django_db
def test_metrics_report_training_runs_by_status_and_their_durations(client):
    from django.utils import timezone

    from training.models import TrainingRun

    now = timezone.now()

    def run(status, seconds, name):
        finished = now if seconds is not None else None
        TrainingRun.objects.create(
            model_name=name,
            algorithm="knn",
            data_path="data/penguins.csv",
            trigger="api",
            status=status,
            started_at=now - timedelta(seconds=seconds or 0),
            finished_at=finished,
            duration_seconds=seconds,
        )

    run("succeeded", 3.0, "a")
    run("succeeded", 45.0, "b")
    run("failed", 0.5, "c")
    run("queued", None, "d")
    samples = scrape(client)
    assert value(samples, "penguin_training_runs", algorithm="knn", status="succeeded") == 2
    assert value(samples, "penguin_training_runs", algorithm="knn", status="failed") == 1
    assert value(samples, "penguin_training_runs", algorithm="knn", status="queued") == 1
    assert value(samples, "penguin_training_run_duration_seconds_count", status="succeeded") == 2
    assert value(samples, "penguin_training_run_duration_seconds_sum", status="succeeded") == 48.0
    assert value(samples, "penguin_training_run_duration_seconds_bucket", status="succeeded", le="5.0") == 1
    assert value(samples, "penguin_training_run_duration_seconds_bucket", status="succeeded", le="60.0") == 2
    assert value(samples, "penguin_training_run_duration_seconds_bucket", status="failed", le="1.0") == 1


def test_metrics_answer_in_openmetrics_when_asked(client, db):
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


@pytest.mark.slow
def test_metrics_from_several_processes_are_summed(tmp_path):
    """What several gunicorn workers do: each writes its own file; /metrics adds them up."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "DJANGO_SETTINGS_MODULE": "penguinsite.settings",
        "PENGUIN_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    worker = textwrap.dedent(
        """
        import django, numpy as np
        django.setup()
        from classifier import metrics
        metrics.predictions_record(model_name="knn", version_number=1, species_ids=np.array([1, 1, 3]))
        metrics.MODEL_CACHE_LOADS.inc()
        """
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], cwd=REPO, env=env, check=True, timeout=120)
    reader = textwrap.dedent(
        """
        import django
        django.setup()
        from prometheus_client import generate_latest
        from classifier.metrics import MetricsView
        print(generate_latest(MetricsView.registry).decode())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", reader], cwd=REPO, env=env, check=True, timeout=120, capture_output=True, text=True
    )
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(result.stdout)
        for sample in family.samples
    }
    assert value(samples, "penguin_predictions_total", model="knn", version="1", species="Adelie") == 4
    assert value(samples, "penguin_predictions_total", model="knn", version="1", species="Gentoo") == 2
    assert value(samples, "penguin_model_cache_loads_total") == 2


# --- request ids ---------------------------------------------------------------------------------


def test_every_response_carries_a_generated_request_id(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert len(first) == 32 and first != second
    for generated in (first, second):  # a random UUID's 32 hex digits, as log tools parse it
        parsed = uuid.UUID(hex=generated)
        assert (parsed.hex, parsed.version, parsed.variant) == (generated, 4, uuid.RFC_4122)


def test_a_sane_request_id_from_the_client_is_kept(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="checkout-7f3a.42")
    assert response["X-Request-ID"] == "checkout-7f3a.42"


@pytest.mark.parametrize("supplied", ["two words", "x" * 200, 'quote"d', "<script>", "-leading-dash", "é"])
def test_an_odd_request_id_from_the_client_is_replaced(client, supplied):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=supplied)
    assert response["X-Request-ID"] != supplied
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_error_responses_carry_the_request_id_too(client):
    response = client.post("/classify/nope", GENTOO, content_type="application/json", HTTP_X_REQUEST_ID="abc-123")
    assert response.status_code == 404
    assert response["X-Request-ID"] == "abc-123"


# --- JSON log lines ------------------------------------------------------------------------------


@pytest.fixture
def json_log():
    """Everything logged under the root logger while the test runs, one JSON object per line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def test_log_lines_are_json_objects_with_the_request_id(json_log):
    with request_id_bound("req-1"):
        logging.getLogger("classifier.test").warning("loaded %s", "knn", extra={"version": 3})
    logging.getLogger("classifier.test").warning("outside a request")
    inside, outside = json_log()
    assert inside["message"] == "loaded knn"
    assert inside["request_id"] == "req-1"
    assert inside["level"] == "WARNING" and inside["logger"] == "classifier.test"
    assert inside["version"] == 3
    assert "request_id" not in outside


@pytest.mark.django_db
def test_django_error_lines_name_the_request_they_answer(client, settings, tmp_path, json_log):
    (tmp_path / "a-file").write_text("")
    settings.PENGUIN_ARTIFACTS_DIR = tmp_path / "a-file" / "artifacts"  # /readyz answers 503
    client.get("/readyz", HTTP_X_REQUEST_ID="abc-503")
    lines = [line for line in json_log() if line["logger"] == "django.request"]
    assert lines and lines[-1]["request_id"] == "abc-503"
    assert lines[-1]["status_code"] == 503


def test_secret_looking_fields_are_masked(json_log):
    logging.getLogger("x").warning("login", extra={"password": "hunter2", "api_token": "t0k3n", "user": "ann"})
    (line,) = json_log()
    assert line["password"] == line["api_token"] == "[redacted]"
    assert line["user"] == "ann"
    assert "hunter2" not in json.dumps(line) and "t0k3n" not in json.dumps(line)


def test_exceptions_are_logged_inside_the_json_object(json_log):
    try:
        raise ValueError("bad value")
    except ValueError:
        logging.getLogger("x").exception("failed")
    (line,) = json_log()
    assert "ValueError: bad value" in line["exc"]


def test_gunicorn_access_lines_are_json_with_the_response_request_id():
    from types import SimpleNamespace

    from gunicorn.config import Config

    config = Config()
    config.set("accesslog", "-")
    logger = GunicornJsonLogger(config)
    stream = io.StringIO()
    for handler in logger.access_log.handlers:
        handler.setStream(stream)
    response = SimpleNamespace(status="200 OK", headers=[("X-Request-ID", "abc-1"), ("Content-Type", "x")], sent=42)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/classify/knn",
        "QUERY_STRING": "token=s3cret&page=2",
        "REMOTE_ADDR": "10.0.0.9",
        "HTTP_USER_AGENT": "curl/8",
        "HTTP_AUTHORIZATION": "Token s3cret",
    }
    logger.access(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=12.5))
    line = json.loads(stream.getvalue())
    assert line["request_id"] == "abc-1"
    assert (line["method"], line["path"], line["status"], line["bytes"]) == ("POST", "/classify/knn", 200, 42)
    assert line["duration_ms"] == 12.5
    assert "s3cret" not in stream.getvalue()
    assert line["query"] == "token=%5Bredacted%5D&page=2"


def test_predictions_record_ignores_empty_batches():
    from classifier import metrics

    metrics.predictions_record(model_name="knn", version_number=1, species_ids=np.array([], dtype=np.int64))


def test_python_warnings_become_json_log_lines(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "penguinsite.settings",
        "PENGUIN_VAR_DIR": str(tmp_path),
        "PENGUIN_LOG_FORMAT": "json",
    }
    code = "import django, warnings; django.setup(); warnings.warn('old pickle format')"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    (line,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert line["logger"] == "py.warnings"
    assert "old pickle format" in line["message"]


def test_a_database_outage_logs_one_traceback_then_one_line_per_failure_with_a_count(client, knn_model, caplog):
    """Not a 6 KB traceback per refused request: the first with its traceback, the rest counted."""
    import re

    from django.db import OperationalError, connection

    def database_gone(execute, sql, params, many, context):
        raise OperationalError("server closed the connection unexpectedly")

    client.post("/classify/knn", data=ADELIE, content_type="application/json")  # model loaded
    with caplog.at_level(logging.ERROR), connection.execute_wrapper(database_gone):
        for path in ["/classify/knn", "/api/v1/models/knn/predict"] * 3:
            answer = client.post(path, data=ADELIE, content_type="application/json")
            assert answer.status_code == 503 and answer.json()["code"] == "database_unavailable"
    lines = [r for r in caplog.records if r.getMessage().startswith("database error")]
    assert len(lines) == 6, [r.getMessage() for r in caplog.records]
    counts = [int(m.group(1)) if (m := re.search(r"failure (\d+) in a row", r.getMessage())) else 1 for r in lines]
    assert counts == list(range(counts[0], counts[0] + 6))  # one streak, counted
    with_traceback = [r for r in lines if r.exc_info]
    # The streak's first failure (and only it) carries the traceback.
    assert len(with_traceback) == (1 if counts[0] == 1 else 0)
    assert "OperationalError: server closed the connection unexpectedly" in lines[-1].getMessage()
