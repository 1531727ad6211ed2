"""A logged row names an existing version and its model, and the database holds every writer to it."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import psycopg2
import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from classifier.log_rule import (
    CHALLENGER_ERROR,
    FIXED_ERROR,
    LOGGED_ERROR,
    RULE_ERROR,
    TRIGGERS,
    log_rule_triggers,
)
from classifier.models import MLModel, ModelVersion, Prediction
from classifier.prediction_log import LOG_FIELDS
from classifier.services.predictions import prediction_log
from core.datasets import dataset_load
from core.encoding import EXAMPLES, FIELDS, row_to_input
from tests.support.data import DATA
from tests.support.models import register_result, suite_database_url
from tests.support.processes import REPO


@pytest.fixture
def two_models(db, trained_results):
    return register_result("knn", trained_results["knn"]), register_result("svm", trained_results["svm"])


def _log(version, model_id, rows, *, version_id=None, challenger_version_id=None):
    matrix = dataset_load(DATA).features()[:rows]
    return prediction_log(
        model_id=model_id,
        version_id=version.pk if version_id is None else version_id,
        matrix=matrix,
        species_ids=np.ones(rows, dtype=np.int16),
        probabilities=None,
        latency_ms=1.0,
        endpoint=Prediction.Endpoint.PREDICT,
        challenger_version_id=challenger_version_id,
        challenger_species_ids=np.full(rows, 2, dtype=np.int16) if challenger_version_id is not None else None,
    )


def _missing_version_id():
    return ModelVersion.objects.order_by("-pk").values_list("pk", flat=True).first() + 1


def _row(version, model_id):
    return Prediction(
        model_id=model_id,
        version=version,
        created_at=timezone.now(),
        endpoint="predict",
        inputs=EXAMPLES["Adelie"],
        species_id=1,
        latency_ms=1.0,
    )


@pytest.mark.parametrize("rows", [1, 50], ids=["one row", "a batch"])  # INSERT; COPY on PostgreSQL
def test_a_row_whose_model_is_not_its_versions_is_refused_and_nothing_is_stored(two_models, rows):
    knn, svm = two_models
    _log(knn, knn.model_id, rows)  # the writers' own rows pass

    with pytest.raises(IntegrityError, match=RULE_ERROR), transaction.atomic():
        _log(knn, svm.model_id, rows)

    assert Prediction.objects.filter(model_id=svm.model_id).count() == 0
    assert Prediction.objects.count() == rows


@pytest.mark.parametrize("rows", [1, 50], ids=["one row", "a batch"])
def test_a_row_naming_a_version_that_does_not_exist_is_refused(two_models, rows):
    knn, _ = two_models

    with pytest.raises(IntegrityError, match=RULE_ERROR), transaction.atomic():
        _log(knn, knn.model_id, rows, version_id=_missing_version_id())

    assert Prediction.objects.count() == 0


@pytest.mark.parametrize("rows", [1, 50], ids=["one row", "a batch"])
def test_a_challengers_version_must_exist(two_models, rows):
    knn, svm = two_models
    _log(knn, knn.model_id, rows, challenger_version_id=svm.pk)  # any existing version passes

    with pytest.raises(IntegrityError, match=CHALLENGER_ERROR), transaction.atomic():
        _log(knn, knn.model_id, rows, challenger_version_id=_missing_version_id())
    (row_id, *_) = _log(knn, knn.model_id, rows)
    with pytest.raises(IntegrityError, match=CHALLENGER_ERROR), transaction.atomic():
        Prediction.objects.filter(pk=row_id).update(challenger_version_id=_missing_version_id())

    assert Prediction.objects.filter(challenger_version_id=svm.pk).count() == rows
    assert Prediction.objects.count() == 2 * rows


def test_one_wrong_row_at_the_end_of_a_statement_refuses_the_whole_statement(two_models):
    knn, svm = two_models
    good = [_row(knn, knn.model_id) for _ in range(20)] + [_row(svm, svm.model_id)]

    with pytest.raises(IntegrityError, match=RULE_ERROR), transaction.atomic():
        Prediction.objects.bulk_create([*good, _row(knn, svm.model_id)])

    assert Prediction.objects.count() == 0
    Prediction.objects.bulk_create(good)
    assert Prediction.objects.count() == 21


def test_moving_a_logged_row_to_another_model_is_refused(two_models):
    knn, svm = two_models
    (row_id,) = _log(knn, knn.model_id, 1)

    with pytest.raises(IntegrityError, match=RULE_ERROR), transaction.atomic():
        Prediction.objects.filter(pk=row_id).update(model_id=svm.model_id)
    with pytest.raises(IntegrityError, match=RULE_ERROR), transaction.atomic():
        Prediction.objects.filter(pk=row_id).update(version_id=svm.pk)

    Prediction.objects.filter(pk=row_id).update(true_species_id=2, feedback_at=timezone.now())  # feedback is free
    Prediction.objects.filter(pk=row_id).update(model_id=svm.model_id, version_id=svm.pk)  # both, consistently
    assert Prediction.objects.values_list("model_id", "true_species_id").get(pk=row_id) == (svm.model_id, 2)


def test_a_versions_model_never_changes(two_models):
    knn, svm = two_models
    _log(knn, knn.model_id, 2)

    with pytest.raises(IntegrityError, match=FIXED_ERROR), transaction.atomic():
        ModelVersion.objects.filter(pk=knn.pk).update(model_id=svm.model_id)
    with pytest.raises(IntegrityError, match=FIXED_ERROR), transaction.atomic():
        ModelVersion.objects.filter(pk=knn.pk).update(id=_missing_version_id())

    knn.refresh_from_db()
    knn.save()  # saving a version rewrites its model with the same value
    assert set(Prediction.objects.values_list("model_id", flat=True)) == {knn.model_id}


def test_a_model_with_logged_predictions_cannot_be_deleted(two_models):
    knn, _ = two_models
    _log(knn, knn.model_id, 3)

    with pytest.raises(ProtectedError):
        MLModel.objects.get(pk=knn.model_id).delete()
    # Below the ORM, the version's key to its model refuses it (the log's rows keep their version).
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM classifier_mlmodel WHERE id = %s", [knn.model_id])
        connection.check_constraints()
    assert Prediction.objects.filter(model_id=knn.model_id).count() == 3


@pytest.mark.parametrize("named_as", ["version", "challenger"])
def test_a_version_that_logged_rows_name_cannot_be_deleted_by_the_orm(two_models, named_as):
    knn, svm = two_models
    if named_as == "version":
        _log(svm, svm.model_id, 2)
    else:
        _log(knn, knn.model_id, 2, challenger_version_id=svm.pk)

    with pytest.raises(ProtectedError):
        ModelVersion.objects.get(pk=svm.pk).delete()
    assert ModelVersion.objects.filter(pk=svm.pk).exists()


@pytest.mark.postgres
@pytest.mark.parametrize("named_as", ["version", "challenger"])
def test_on_postgresql_raw_sql_cannot_delete_a_version_that_logged_rows_name(two_models, named_as):
    knn, svm = two_models
    spare = _spare_version(svm.model)
    if named_as == "version":
        _log(spare, svm.model_id, 2)
    else:
        _log(knn, knn.model_id, 2, challenger_version_id=spare.pk)

    def delete_spare():
        # Checked at commit, as a foreign key is: check_constraints() brings the check forward.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM classifier_modelversion WHERE id = %s", [spare.pk])
            connection.check_constraints()

    with pytest.raises(IntegrityError, match=LOGGED_ERROR):
        delete_spare()
    assert ModelVersion.objects.filter(pk=spare.pk).exists()
    assert Prediction.objects.count() == 2

    Prediction.objects.all().delete()
    delete_spare()  # once no row names it, it goes
    assert not ModelVersion.objects.filter(pk=spare.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("named_as", ["version", "challenger"])
@pytest.mark.parametrize("first", ["the row is written", "the version is deleted"])
def test_on_postgresql_a_version_deleted_while_a_row_naming_it_is_written_stays(trained_results, named_as, first):
    # Two sessions at once: one writes a row naming a version, one deletes that version. A key
    # would lock the version for the writer; the rule makes the deleting session wait for the
    # writer instead, and then refuses, so no logged row ever names a missing version.
    knn = register_result("knn", trained_results["knn"])
    spare = _spare_version(knn.model)
    columns = ", ".join(Prediction._meta.get_field(name).column for name in LOG_FIELDS)
    sql = f"INSERT INTO classifier_prediction ({columns}) VALUES ({', '.join(['%s'] * len(LOG_FIELDS))})"
    version_id, challenger = (spare.pk, None) if named_as == "version" else (knn.pk, spare.pk)
    inputs = row_to_input(dataset_load(DATA).features()[0])
    values = (knn.model_id, version_id, timezone.now(), "predict", *(inputs[field] for field in FIELDS), 1)
    values += (None, None, None, 1.0, challenger, 2 if challenger else None)
    writer, deleter = (psycopg2.connect(suite_database_url()) for _ in range(2))
    try:
        steps = [
            lambda: writer.cursor().execute(sql, values),
            lambda: deleter.cursor().execute("DELETE FROM classifier_modelversion WHERE id = %s", [spare.pk]),
        ]
        for step in steps if first == "the row is written" else steps[::-1]:
            step()
        outcome: list = []
        committing = threading.Thread(target=lambda: outcome.append(_commit(deleter)))
        committing.start()
        committing.join(timeout=1.0)
        assert committing.is_alive()  # the delete waits for the writer's transaction
        writer.commit()
        committing.join(timeout=10)
    finally:
        writer.close()
        deleter.close()

    assert outcome and isinstance(outcome[0], psycopg2.IntegrityError) and LOGGED_ERROR in str(outcome[0])
    assert ModelVersion.objects.filter(pk=spare.pk).exists()
    assert Prediction.objects.count() == 1  # the writer's row, naming the version that stayed


def _spare_version(model):
    return ModelVersion.objects.create(model=model, number=99, artifact_path="models/spare.joblib", sha256="0" * 64)


def _commit(connection):
    try:
        connection.commit()
    except psycopg2.Error as exc:
        return exc
    return None


@pytest.mark.django_db(transaction=True)
def test_migrating_back_and_forward_repairs_old_rows_and_keeps_the_rule(trained_results):
    knn = register_result("knn", trained_results["knn"])
    svm = register_result("svm", trained_results["svm"])
    assert log_rule_triggers(connection) == set(TRIGGERS[connection.vendor])

    call_command("migrate", "classifier", "0007", verbosity=0)
    assert log_rule_triggers(connection) == set()
    Prediction.objects.bulk_create([_row(knn, knn.model_id), _row(knn, svm.model_id)])  # the key allowed it

    call_command("migrate", verbosity=0)
    assert log_rule_triggers(connection) == set(TRIGGERS[connection.vendor])
    assert set(Prediction.objects.values_list("model_id", flat=True)) == {knn.model_id}  # the version decides
    with pytest.raises(IntegrityError, match=RULE_ERROR), transaction.atomic():
        _log(knn, svm.model_id, 1)


# A later migration that rebuilds both tables the rule names, as SQLite does for most ALTERs.
LATER_MIGRATION = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("classifier", "%s")]
    operations = [
        migrations.AlterField("modelversion", "onnx_path", models.CharField(max_length=600, blank=True)),
        migrations.AlterField("prediction", "latency_ms", models.FloatField(null=True)),
    ]
"""


def test_on_sqlite_the_rule_outlives_later_migrations_that_rebuild_its_tables(tmp_path):
    # Whatever database the suite runs on: the laptop default is SQLite, where a rebuilt table
    # loses its triggers and a trigger naming a table being rebuilt stops the migration.
    migrations = tmp_path / "later_migrations"
    shutil.copytree(REPO / "classifier" / "migrations", migrations, ignore=shutil.ignore_patterns("__pycache__"))
    head = max(path.stem for path in migrations.glob("0*.py"))
    (migrations / "9999_later.py").write_text(LATER_MIGRATION % head)
    (tmp_path / "later_settings.py").write_text(
        "from penguinsite.settings import *  # noqa\nMIGRATION_MODULES = {'classifier': 'later_migrations'}\n"
    )
    database = tmp_path / "db.sqlite3"
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "DJANGO_SETTINGS_MODULE": "later_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
    }

    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert migrated.returncode == 0, migrated.stderr[-2000:]
    with sqlite3.connect(database) as sqlite:
        assert ("classifier", "9999_later") in set(sqlite.execute("SELECT app, name FROM django_migrations"))
        triggers = {name for (name,) in sqlite.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert triggers == set(TRIGGERS["sqlite"])
