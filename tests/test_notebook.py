"""training/notebooks/train.ipynb trains through the training service and its version serves at once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from training.models import TrainingRun

NOTEBOOK = Path(__file__).resolve().parent.parent / "training" / "notebooks" / "train.ipynb"


def run_notebook() -> dict:
    """Execute the notebook's code cells in order, as Jupyter would, and return its namespace."""
    notebook = json.loads(NOTEBOOK.read_text())
    namespace: dict = {"__name__": "__main__"}
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"train.ipynb[{index}]", "exec"), namespace)
    return namespace


def test_notebook_is_a_valid_nbformat_4_notebook_without_outputs():
    notebook = json.loads(NOTEBOOK.read_text())
    assert notebook["nbformat"] == 4
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)


@pytest.mark.django_db(transaction=True)
def test_notebook_trains_a_version_that_the_web_service_serves_at_once(live_server, monkeypatch, knn_model):
    monkeypatch.setenv("PENGUIN_WEB_URL", live_server.url)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setattr(sys, "path", list(sys.path))

    namespace = run_notebook()

    run = TrainingRun.objects.get(pk=namespace["run"].pk)
    assert run.trigger == TrainingRun.Trigger.NOTEBOOK
    assert run.status == TrainingRun.Status.SUCCEEDED
    assert run.version.number == knn_model.number + 1
    assert run.activated
    assert namespace["served_by"] == str(run.version.number)


@pytest.mark.django_db(transaction=True)
def test_notebook_draws_the_versions_confusion_matrix_and_metrics(live_server, monkeypatch, knn_model):
    import numpy as np

    monkeypatch.setenv("PENGUIN_WEB_URL", live_server.url)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setattr(sys, "path", list(sys.path))

    namespace = run_notebook()

    version = TrainingRun.objects.get(pk=namespace["run"].pk).version
    shown = namespace["confusion"]
    assert list(shown.index) == list(shown.columns) == ["Adelie", "Chinstrap", "Gentoo"]
    assert shown.to_numpy().tolist() == version.confusion_matrix["matrix"]
    assert not shown.isna().any().any() and shown.to_numpy().sum() == version.n_test
    matrix_axes, metrics_axes = namespace["figure"].axes
    assert np.array_equal(matrix_axes.images[0].get_array(), np.array(version.confusion_matrix["matrix"]))
    assert [label.get_text() for label in matrix_axes.get_xticklabels()] == ["Adelie", "Chinstrap", "Gentoo"]
    bars = {
        label.get_text(): bar.get_width() for label, bar in zip(metrics_axes.get_yticklabels(), metrics_axes.patches)
    }
    assert bars["test_accuracy"] == pytest.approx(version.metrics["test_accuracy"], abs=1e-4)
