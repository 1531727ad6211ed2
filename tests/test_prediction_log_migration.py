"""Rows logged with JSON inputs and probabilities survive the move to typed columns, and back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = ("classifier", "0004_prediction_endpoint_infer")
AFTER = ("classifier", "0005_typed_prediction_log_and_monitoring")
INPUTS = {
    "island": 2,
    "bill_length_mm": 46.1,
    "bill_depth_mm": 13.2,
    "flipper_length_mm": 211.0,
    "body_mass_g": 4500.0,
    "sex": 0,
    "year": 2007,
}
PROBABILITIES = {"Adelie": 0.0, "Chinstrap": 0.2, "Gentoo": 0.8}


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    executor.loader.build_graph()
    return executor.loader.project_state([target]).apps


@pytest.mark.django_db(transaction=True)
def test_existing_rows_convert_to_typed_columns_and_back():
    old = _migrate(BEFORE)
    model = old.get_model("classifier", "MLModel").objects.create(name="knn")
    version = old.get_model("classifier", "ModelVersion").objects.create(
        model=model, number=1, artifact_path="models/knn.joblib", sha256="0" * 64
    )
    Prediction = old.get_model("classifier", "Prediction")
    common = {"model": model, "version": version, "created_at": timezone.now(), "endpoint": "predict"}
    with_proba = Prediction.objects.create(
        **common, inputs=INPUTS, species_id=3, probabilities=PROBABILITIES, latency_ms=1.5
    )
    without = Prediction.objects.create(
        **common, inputs={**INPUTS, "island": 1, "sex": 1}, species_id=1, probabilities=None, latency_ms=0.5
    )

    new = _migrate(AFTER)
    rows = {row.pk: row for row in new.get_model("classifier", "Prediction").objects.all()}
    converted = rows[with_proba.pk]
    assert {name: getattr(converted, name) for name in INPUTS} == INPUTS
    assert (converted.proba_adelie, converted.proba_chinstrap, converted.proba_gentoo) == (0.0, 0.2, 0.8)
    assert (rows[without.pk].island, rows[without.pk].sex, rows[without.pk].proba_gentoo) == (1, 1, None)

    back = _migrate(BEFORE)
    rows = {row.pk: row for row in back.get_model("classifier", "Prediction").objects.all()}
    assert rows[with_proba.pk].inputs == INPUTS
    assert rows[with_proba.pk].probabilities == PROBABILITIES
    assert rows[without.pk].probabilities is None
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # leave the test database as it was
