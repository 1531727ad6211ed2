"""manage.py train_model: success, and clear failures that register nothing."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from classifier.models import MLModel, ModelVersion

pytestmark = pytest.mark.django_db


def run(*args):
    from io import StringIO

    out = StringIO()
    call_command("train_model", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_train_model_registers_an_active_version_and_prints_the_metrics_table():
    output = run("knn", "--param", "n_neighbors=7", "--name", "knn7")
    assert "test_accuracy" in output and "knn7" in output
    version = ModelVersion.objects.get(model__name="knn7")
    assert version.params["n_neighbors"] == 7
    assert version.model.active_version == version
    assert f"{version.metrics['test_accuracy']:.4f}" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["forest"], "Unknown algorithm 'forest'"),
        (["knn", "--param", "neighbours=3"], "knn has no parameter 'neighbours'"),
        (["knn", "--param", "n_neighbors=-2"], "n_neighbors"),
        (["knn", "--param", "n_neighbors"], "expected NAME=VALUE"),
        (["svm", "--param", "kernel=banana"], "kernel"),
        (["knn", "--data", "/nonexistent.csv"], "does not exist"),
        (["knn", "--test-size", "0.9"], "test_size"),
        (["knn", "--name", "Bad Name!"], "Invalid model name"),
        ([], "Give one algorithm"),
    ],
)
def test_train_model_fails_clearly_and_registers_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not MLModel.objects.exists()
    assert not ModelVersion.objects.exists()


def test_train_model_with_a_malformed_data_file_names_the_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year\n"
        "Adelie,Torgersen,39.1,18.7,181,3750,male,2007\n"
        "Adelie,Torgersen,abc,18.7,181,3750,male,2007\n"
    )
    with pytest.raises(CommandError, match="row 3, column bill_length_mm"):
        run("knn", "--data", str(path))
    assert not ModelVersion.objects.exists()


@pytest.mark.slow
def test_train_model_all_trains_every_default_algorithm():
    run("--all")
    assert sorted(MLModel.objects.values_list("name", flat=True)) == sorted(
        ["randomforest", "gradientboosting", "svm", "knn", "logisticregression"]
    )


def test_train_model_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        call_command("train_model", "--help")
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--all", "--param", "--data", "--test-size", "--seed", "--no-activate", "--async"):
        assert option in help_text


@pytest.mark.slow
def test_train_model_on_a_terminal_prints_plain_lines(tmp_path):
    """Run by hand (stdout and stderr a terminal): the table and plain log lines, no JSON records."""
    import json
    import os
    import pty
    import subprocess

    from tests.support.processes import PYTHON, REPO
    from tests.support.service import manage, service_env

    env = service_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", DJANGO_LOG_LEVEL="INFO")
    env.pop("PENGUIN_LOG_FORMAT", None)
    manage(env, "migrate", "--noinput")
    main, terminal = pty.openpty()
    process = subprocess.Popen(
        [PYTHON, str(REPO / "manage.py"), "train_model", "knn"], env=env, cwd=REPO, stdout=terminal, stderr=terminal
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closes when the command exits
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert process.wait(timeout=300) == 0
    lines = [line.strip() for line in output.decode(errors="replace").splitlines() if line.strip()]
    assert any(line.startswith("model") and "test_accuracy" in line for line in lines)
    assert any("INFO training" in line and "trained knn v1" in line for line in lines)
    for line in lines:
        if line.startswith("{"):
            with pytest.raises(ValueError):
                json.loads(line)
