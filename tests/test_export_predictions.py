"""manage.py export_predictions: the log as the earlier JSON lines, or CSV, read back and compared."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from classifier.models import Prediction
from tests.support.data import ADELIE, CHINSTRAP, GENTOO
from tests.support.models import register_result

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(trained_results):
    """Four predictions: three by knn (one through /classify), one by svm three days ago."""
    register_result("knn", trained_results["knn"])
    register_result("svm", trained_results["svm"])
    client = APIClient()
    client.post("/classify/knn", data=json.dumps(GENTOO), content_type="application/json")
    client.post("/api/v1/models/knn/predict", data={"instances": [ADELIE, CHINSTRAP]}, format="json")
    client.post("/api/v1/models/svm/predict", data=ADELIE, format="json")
    old = Prediction.objects.get(model__name="svm")
    Prediction.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    return list(Prediction.objects.order_by("id").select_related("model", "version"))


def export(*args) -> str:
    out = StringIO()
    call_command("export_predictions", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_jsonl_is_the_earlier_format_with_one_line_per_prediction_oldest_first(logged):
    lines = [json.loads(line) for line in export().splitlines()]
    assert len(lines) == len(logged)
    for line, row in zip(lines, logged):
        assert set(line) == {"timestamp", "input", "result"}
        assert parse_datetime(line["timestamp"]) == row.created_at
        assert line["input"] == row.inputs
        assert line["result"] == {
            "model": row.model.name,
            "species_id": row.species_id,
            "species_name": {1: "Adelie", 2: "Chinstrap", 3: "Gentoo"}[row.species_id],
        }
    assert lines[0]["result"] == {"model": "knn", "species_id": 3, "species_name": "Gentoo"}
    assert lines[0]["input"] == {**GENTOO, "bill_length_mm": 46.1, "flipper_length_mm": 211.0, "body_mass_g": 4500.0}


def test_jsonl_result_is_what_classify_answered(trained_results):
    register_result("knn", trained_results["knn"])
    answer = APIClient().post("/classify/knn", data=json.dumps(CHINSTRAP), content_type="application/json").json()
    (line,) = [json.loads(text) for text in export().splitlines()]
    assert line["result"] == answer


def test_csv_has_a_column_per_field_and_the_probabilities(logged, tmp_path):
    target = tmp_path / "log.csv"
    assert export("--format", "csv", "--output", str(target)) == ""
    with open(target, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(logged)
    for row, prediction in zip(rows, logged):
        assert int(row["id"]) == prediction.pk
        assert row["model"] == prediction.model.name
        assert int(row["version"]) == prediction.version.number
        assert int(row["species_id"]) == prediction.species_id
        for field, value in prediction.inputs.items():
            assert float(row[field]) == value
        if prediction.probabilities:
            total = sum(float(row[f"probability_{name}"]) for name in ("Adelie", "Chinstrap", "Gentoo"))
            assert total == pytest.approx(1.0, abs=1e-5)
        else:
            assert row["probability_Adelie"] == ""


def test_since_and_model_narrow_the_export(logged):
    since = (timezone.now() - timedelta(days=1)).date().isoformat()
    lines = [json.loads(line) for line in export("--since", since).splitlines()]
    assert {line["result"]["model"] for line in lines} == {"knn"}
    assert len(lines) == 3
    lines = [json.loads(line) for line in export("--model", "svm").splitlines()]
    assert len(lines) == 1
    assert export("--model", "svm", "--since", timezone.now().isoformat()) == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last tuesday"], "--since"),
        (["--model", "nope"], "no such model"),
        (["--output", "/nonexistent-folder/log.jsonl"], "--output"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(logged, args, message):
    with pytest.raises(CommandError, match=message):
        export(*args)


def test_an_empty_log_exports_nothing(db):
    assert export() == ""
    assert export("--format", "csv").splitlines()[0].startswith("id,timestamp,model,version")


@pytest.mark.slow
def test_export_into_a_reader_that_stops_early_exits_quietly(tmp_path):
    """`export_predictions | head -1`: one line out, no BrokenPipeError traceback, exit 0."""
    import subprocess

    from tests.support.processes import PYTHON, REPO
    from tests.support.service import manage, service_env

    env = service_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    manage(env, "migrate", "--noinput")
    manage(env, "train_model", "knn")
    manage(env, "generate_predictions", "--total", "20000")  # several MB: more than a pipe holds
    export = subprocess.Popen(
        [PYTHON, str(REPO / "manage.py"), "export_predictions"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = export.stdout.readline()
    export.stdout.close()  # what head does after its line
    stderr = export.stderr.read().decode()
    assert export.wait(timeout=120) == 0
    assert json.loads(first)["result"]["model"] == "knn"
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr and "Exception ignored" not in stderr
