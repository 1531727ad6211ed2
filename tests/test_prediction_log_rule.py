"""The log's model column is its version's model, and the database holds every writer to it."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from classifier.models import MLModel, Prediction
from classifier.services.predictions import prediction_log
from core.datasets import dataset_load
from tests.support.data import DATA
from tests.support.models import register_result

RULE = "model_id must be the model of version_id"


@pytest.fixture
def two_models(db, trained_results):
    return register_result("knn", trained_results["knn"]), register_result("svm", trained_results["svm"])


def _log(version, model_id, rows):
    matrix = dataset_load(DATA).features()[:rows]
    return prediction_log(
        model_id=model_id,
        version_id=version.pk,
        matrix=matrix,
        species_ids=np.ones(rows, dtype=np.int16),
        probabilities=None,
        latency_ms=1.0,
        endpoint=Prediction.Endpoint.PREDICT,
    )


@pytest.mark.parametrize("rows", [1, 50], ids=["one row", "a batch"])  # INSERT; COPY on PostgreSQL
def test_a_row_whose_model_is_not_its_versions_is_refused_and_nothing_is_stored(two_models, rows):
    knn, svm = two_models
    _log(knn, knn.model_id, rows)  # the writers' own rows pass

    with pytest.raises(IntegrityError, match=RULE), transaction.atomic():
        _log(knn, svm.model_id, rows)

    assert Prediction.objects.filter(model_id=svm.model_id).count() == 0
    assert Prediction.objects.count() == rows


def test_moving_a_logged_row_to_another_model_is_refused(two_models):
    knn, svm = two_models
    (row_id,) = _log(knn, knn.model_id, 1)

    with pytest.raises(IntegrityError, match=RULE), transaction.atomic():
        Prediction.objects.filter(pk=row_id).update(model_id=svm.model_id)
    with pytest.raises(IntegrityError, match=RULE), transaction.atomic():
        Prediction.objects.filter(pk=row_id).update(version_id=svm.pk)

    Prediction.objects.filter(pk=row_id).update(true_species_id=2, feedback_at=timezone.now())  # feedback is free
    assert Prediction.objects.get(pk=row_id).model_id == knn.model_id


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
