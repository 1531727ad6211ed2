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
