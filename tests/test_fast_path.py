"""The fast serving path: ONNX export with parity, its fallback, and a lean request path."""

from __future__ import annotations

import json
import os
import pickle
import select
import signal
import threading

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from classifier import onnx_runtime, predict
from classifier.models import ModelVersion, Prediction
from classifier.selectors import serving_entry
from classifier.services import sync
from classifier.services.predictions import prediction_log
from classifier.serving import load_entry, loaded_cache
from core.datasets import dataset_load
from core.encoding import probabilities_rounded, row_to_input
from core.hashing import sha256_file
from tests.support.data import ADELIE, CHINSTRAP, DATA, GENTOO, legacy_pickle

pytestmark = pytest.mark.django_db

SPECIES_IDS = {"Adelie": 1, "Chinstrap": 2, "Gentoo": 3}


class MajorityVote(ClassifierMixin, BaseEstimator):
    """A home-made classifier that skl2onnx has no converter for."""

    def fit(self, features, target):
        self.forest_ = RandomForestClassifier(n_estimators=5, random_state=0).fit(features, target)
        self.classes_ = self.forest_.classes_
        self.n_features_in_ = features.shape[1]
        return self

    def predict(self, features):
        return self.forest_.predict(features)

    def predict_proba(self, features):
        return self.forest_.predict_proba(features)


def classify(client, name, body):
    return client.post(f"/classify/{name}", data=json.dumps(body), content_type="application/json")


def drop(artifacts_dir, name: str, obj) -> None:
    folder = artifacts_dir / "models"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}_model.pkl", "wb") as handle:
        pickle.dump(obj, handle)


def loaded(version: ModelVersion):
    return load_entry(serving_entry(version))


def test_every_default_model_is_served_by_onnx_with_its_own_verified_file(default_models, artifacts_dir):
    for name, version in default_models.items():
        assert version.runtime == "onnx", (name, version.runtime_reason)
        assert version.runtime_reason == ""
        assert version.onnx_path == f"registry/{name}/v1/model.onnx"
        onnx_file = artifacts_dir / version.onnx_path
        assert sha256_file(onnx_file) == version.onnx_sha256
        assert version.onnx_sha256 != version.sha256
        # The pickle stays the source of truth, beside it.
        assert (artifacts_dir / version.artifact_path).is_file()


def test_onnx_answers_match_scikit_learn_on_the_whole_dataset(default_models, trained_results):
    features = dataset_load(DATA).features()
    for name, version in default_models.items():
        model = loaded(version)
        assert model.runtime == "onnx"
        assert model.estimator is None  # served without unpickling
        species, probabilities = model.predict_with_proba(features, with_proba=True)
        pipeline = trained_results[name].pipeline
        assert species.tolist() == pipeline.predict(features).tolist(), name
        np.testing.assert_allclose(probabilities, pipeline.predict_proba(features), atol=1e-5, rtol=0)
        assert model.predict(features[:1]).tolist() == [int(pipeline.predict(features[:1])[0])]


@pytest.mark.parametrize(("body", "species"), [(ADELIE, "Adelie"), (CHINSTRAP, "Chinstrap"), (GENTOO, "Gentoo")])
def test_classify_through_the_fast_path_names_the_true_species(client, default_models, body, species):
    for name in default_models:
        response = classify(client, name, body)
        assert response.status_code == 200, response.content
        assert response.json()["species_name"] == species
    assert Prediction.objects.count() == len(default_models)


def test_forest_parity_needs_the_float32_cast_that_scikit_learn_trees_apply(trained_results):
    from classifier.estimators import inspect_estimator

    pipeline = trained_results["randomforest"].pipeline
    export = onnx_runtime.onnx_export(pipeline, inspect_estimator(pipeline))
    assert export.ok
    assert export.variant == "float32 cast before the estimator"
    assert export.max_probability_difference <= onnx_runtime.PARITY_ATOL


def test_a_dropped_in_estimator_that_cannot_be_converted_serves_with_scikit_learn_and_says_why(
    client, artifacts_dir, trained_results
):
    from core.datasets import dataset_load as load

    dataset = load(DATA)
    drop(artifacts_dir, "homemade", MajorityVote().fit(dataset.features(), dataset.target()))

    response = classify(client, "homemade", GENTOO)

    assert response.status_code == 200, response.content
    assert response.json()["species_name"] == "Gentoo"
    version = ModelVersion.objects.get(model__name="homemade")
    assert version.runtime == "sklearn"
    assert version.onnx_path == ""
    assert "no ONNX conversion matches scikit-learn" in version.runtime_reason
    assert "MajorityVote" in version.runtime_reason
    assert not (artifacts_dir / "registry" / "homemade").exists()


def test_a_legacy_nine_feature_pickle_is_converted_on_discovery(client, artifacts_dir):
    drop(artifacts_dir, "legacy", legacy_pickle())

    for body, species in ((ADELIE, "Adelie"), (CHINSTRAP, "Chinstrap"), (GENTOO, "Gentoo")):
        response = classify(client, "legacy", body)
        assert response.status_code == 200, response.content
        assert response.json()["species_name"] == species

    version = ModelVersion.objects.get(model__name="legacy")
    assert version.source == "discovered"
    assert version.runtime == "onnx", version.runtime_reason
    assert version.onnx_path == "registry/legacy/v1/model.onnx"
    assert not list((artifacts_dir / "models").glob("*.onnx"))  # the earlier service's folder stays as it was


def test_a_model_without_probabilities_is_converted_for_its_classes(client, artifacts_dir):
    dataset = dataset_load(DATA)
    pipeline = Pipeline([("scaler", StandardScaler()), ("svc", SVC())]).fit(dataset.features(), dataset.target())
    drop(artifacts_dir, "plainsvc", pipeline)

    response = classify(client, "plainsvc", CHINSTRAP)

    assert response.status_code == 200, response.content
    assert response.json()["species_name"] == "Chinstrap"
    version = ModelVersion.objects.get(model__name="plainsvc")
    assert version.runtime == "onnx", version.runtime_reason
    model = loaded(version)
    assert not model.has_proba
    assert model.predict(dataset.features()).tolist() == pipeline.predict(dataset.features()).tolist()


def test_a_parity_failure_keeps_scikit_learn_and_records_the_difference(trained_results, monkeypatch):
    from tests.support.models import register_result

    monkeypatch.setattr(onnx_runtime, "PARITY_ATOL", -1.0)  # no conversion can pass now

    version = register_result("knn", trained_results["knn"])

    assert version.runtime == "sklearn"
    assert "parity check failed: probabilities differ" in version.runtime_reason
    assert version.onnx_path == "" and version.onnx_sha256 == ""
    assert loaded(version).runtime == "sklearn"


def test_without_the_dataset_the_version_serves_with_scikit_learn_and_says_why(trained_results, settings, tmp_path):
    from tests.support.models import register_result

    settings.PENGUIN_DATA_PATH = tmp_path / "gone.csv"

    version = register_result("knn", trained_results["knn"])

    assert version.runtime == "sklearn"
    assert "no data to check parity with" in version.runtime_reason


def test_a_tampered_onnx_file_is_refused_and_marks_the_version_broken(client, knn_model, artifacts_dir):
    path = artifacts_dir / knn_model.onnx_path
    path.write_bytes(path.read_bytes() + b"\0")

    response = classify(client, "knn", ADELIE)

    assert response.status_code == 409
    assert "model.onnx does not match its registry hash" in response.json()["detail"]
    knn_model.refresh_from_db()
    assert "model.onnx" in knn_model.broken_reason
    assert Prediction.objects.count() == 0


def test_a_tampered_pickle_is_refused_even_when_onnx_serves(client, knn_model, artifacts_dir):
    path = artifacts_dir / knn_model.artifact_path
    path.write_bytes(path.read_bytes()[:-10])

    response = classify(client, "knn", ADELIE)

    assert response.status_code == 409
    assert "model.joblib does not match its registry hash" in response.json()["detail"]


def test_a_warm_single_classify_costs_one_insert_and_nothing_else(client, default_models, settings, monkeypatch):
    settings.PENGUIN_REGISTRY_REFRESH_SECONDS = 60
    for name in default_models:
        assert classify(client, name, ADELIE).status_code == 200  # warm: registry read, models loaded
    loads = loaded_cache.loads

    def no_scan():
        raise AssertionError("the drop-in folder was scanned during a request")

    monkeypatch.setattr(sync, "drop_folder_fingerprint", no_scan)
    for name in default_models:
        with CaptureQueriesContext(connection) as queries:
            response = classify(client, name, GENTOO)
        assert response.status_code == 200
        statements = [query["sql"] for query in queries.captured_queries]
        assert len(statements) == 1, statements
        assert 'INSERT INTO "classifier_prediction"' in statements[0]
    assert loaded_cache.loads == loads  # nothing unpickled or reloaded per request


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # autocommit, as in production: SET LOCAL then scopes one INSERT
def test_with_sync_commit_off_the_row_is_still_written_and_the_session_stays_durable(client, knn_model, settings):
    settings.PENGUIN_LOG_SYNC_COMMIT = False
    classify(client, "knn", ADELIE)  # warm

    with CaptureQueriesContext(connection) as queries:
        response = classify(client, "knn", GENTOO)

    assert response.status_code == 200
    assert Prediction.objects.get(pk=response["X-Prediction-Id"]).species_id == 3
    assert queries.captured_queries[-1]["sql"].startswith("SET LOCAL synchronous_commit TO OFF; INSERT")
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"  # only those INSERTs skip the flush


def test_a_new_version_is_picked_up_after_the_refresh_interval(client, knn_model, trained_results, settings):
    from tests.support.models import register_result

    settings.PENGUIN_REGISTRY_REFRESH_SECONDS = 60
    assert classify(client, "knn", ADELIE)["X-Model-Version"] == "1"
    register_result("knn", trained_results["knn"])
    assert classify(client, "knn", ADELIE)["X-Model-Version"] == "1"  # cached until the next check

    settings.PENGUIN_REGISTRY_REFRESH_SECONDS = 0  # as if the interval had elapsed
    assert classify(client, "knn", ADELIE)["X-Model-Version"] == "2"


def test_a_logged_batch_keeps_every_rows_inputs_answer_and_probabilities_in_order(knn_model):
    features = dataset_load(DATA).features()[::7]

    outcome = predict.prediction_make(
        model_name="knn", matrix=features, endpoint=Prediction.Endpoint.PREDICT, with_probabilities=True
    )

    assert len(outcome.prediction_ids) == len(features) == len(set(outcome.prediction_ids))
    logged = Prediction.objects.in_bulk(outcome.prediction_ids)
    for index, prediction_id in enumerate(outcome.prediction_ids):
        row = logged[prediction_id]
        assert row.inputs == row_to_input(features[index])
        assert row.species_id == outcome.species_ids[index]
        logged_proba = [row.probabilities[name] for name in ("Adelie", "Chinstrap", "Gentoo")]
        np.testing.assert_allclose(logged_proba, outcome.probabilities[index], atol=1e-6)
        assert row.version_id == knn_model.pk and row.endpoint == "predict"


def test_the_batch_writer_stores_the_same_values_as_one_row_at_a_time(knn_model):
    rng = np.random.default_rng(3)
    matrix = dataset_load(DATA).features()[rng.integers(0, 333, size=200)]
    matrix[:, 1:5] += rng.normal(0, 1e-3, size=(200, 4))  # awkward decimals
    probabilities = rng.dirichlet([1, 1, 1], size=200)
    species = probabilities.argmax(axis=1) + 1
    shadow = rng.integers(1, 4, size=200)
    written = {
        "batch": [(matrix, species, probabilities, shadow)],  # COPY on PostgreSQL
        "one by one": [
            (matrix[i : i + 1], species[i : i + 1], probabilities[i : i + 1], shadow[i : i + 1]) for i in range(200)
        ],
    }
    stored = {}
    before = timezone.now()
    for how, calls in written.items():
        ids = []
        for rows, codes, proba, challenger in calls:
            ids += prediction_log(
                model_id=knn_model.model_id,
                version_id=knn_model.pk,
                matrix=rows,
                species_ids=codes,
                probabilities=proba,
                latency_ms=2.5,
                endpoint=Prediction.Endpoint.PREDICT,
                challenger_version_id=knn_model.pk,
                challenger_species_ids=challenger,
            )
        logged = Prediction.objects.in_bulk(ids)
        stored[how] = [
            (
                row.inputs,
                row.species_id,
                row.probabilities,
                row.latency_ms,
                row.challenger_version_id,
                row.challenger_species_id,
                row.endpoint,
            )
            for row in (logged[pk] for pk in ids)
        ]

    assert stored["batch"] == stored["one by one"]
    assert before <= Prediction.objects.earliest("id").created_at <= timezone.now()
    assert [inputs for inputs, *_ in stored["batch"]] == [row_to_input(row) for row in matrix]
    assert stored["batch"][0][2] == dict(zip(SPECIES_IDS, probabilities_rounded(probabilities)[0].tolist()))


def _varied_rows(count: int) -> np.ndarray:
    """``count`` dataset penguins with their measurements moved a little, so rows differ."""
    features = dataset_load(DATA).features()
    rng = np.random.default_rng(7)
    rows = features[rng.integers(0, len(features), size=count)].copy()
    rows[:, 1:5] += rng.normal(0, 0.5, size=(count, 4))
    return rows


@pytest.mark.parametrize("threads", [2, 3, 4, 7])
def test_a_large_batch_gets_the_same_answers_bit_for_bit_whatever_the_threads(
    default_models, settings, monkeypatch, threads
):
    ran_on: dict[str, set[str]] = {}
    for name, version in default_models.items():
        session = loaded(version).onnx.session
        run = session.run

        def counted(*args, _run=run, _name=name, **kwargs):
            ran_on.setdefault(_name, set()).add(threading.current_thread().name)
            return _run(*args, **kwargs)

        monkeypatch.setattr(session, "run", counted)
    for count in (2_000, 5_003, 10_000):
        rows = _varied_rows(count)
        for name, version in default_models.items():
            model = loaded(version)
            settings.PENGUIN_PREDICT_THREADS = 1
            one_species, one_probabilities = model.predict_with_proba(rows, with_proba=True)
            settings.PENGUIN_PREDICT_THREADS = threads
            species, probabilities = model.predict_with_proba(rows, with_proba=True)
            # A forest summed by onnxruntime's own threads differs in the 7th decimal; a matrix
            # product cut into blocks of another size, in the last bit.
            assert np.array_equal(species, one_species), (name, count)
            assert np.array_equal(probabilities, one_probabilities), (name, count)
    # The forests' batches were shared between threads; the others' kept one.
    assert {name: len(names) > 1 for name, names in ran_on.items()} == {
        "randomforest": True,
        "gradientboosting": True,
        "logisticregression": False,
        "svm": False,
        "knn": False,
    }


def test_a_forest_gives_a_penguin_in_a_large_batch_the_answer_it_gets_alone(default_models):
    rows = _varied_rows(4_000)
    for name in ("randomforest", "gradientboosting"):
        model = loaded(default_models[name])
        species, probabilities = model.predict_with_proba(rows, with_proba=True)
        sample = range(0, len(rows), 53)
        alone = [model.predict_with_proba(rows[index : index + 1], with_proba=True) for index in sample]
        assert np.array_equal(np.concatenate([answer[0] for answer in alone]), species[::53]), name
        assert np.array_equal(np.concatenate([answer[1] for answer in alone]), probabilities[::53]), name


def test_a_large_batch_runs_its_blocks_itself_while_the_pool_is_busy_and_never_waits_for_it(
    default_models, settings, monkeypatch
):
    """Batches that meet share the threads: a busy pool must not hold a batch back."""
    settings.PENGUIN_PREDICT_THREADS = 3
    model = loaded(default_models["randomforest"])
    rows = _varied_rows(6_000)
    expected_species, expected_probabilities = model.predict_with_proba(rows, with_proba=True)
    pool = onnx_runtime._split_pool(3)
    held = threading.Event()
    for _ in range(2):  # other work holds both of the pool's threads
        pool.submit(held.wait, 60)
    ran_on = []
    run = model.onnx.session.run

    def counted(*args, **kwargs):
        ran_on.append(threading.current_thread().name)
        return run(*args, **kwargs)

    monkeypatch.setattr(model.onnx.session, "run", counted)
    answers = []
    batch = threading.Thread(target=lambda: answers.append(model.predict_with_proba(rows, with_proba=True)))
    try:
        batch.start()
        batch.join(30)
        assert answers, "the batch waited for the busy pool"
    finally:
        held.set()
        batch.join()

    assert ran_on == [batch.name] * 6  # every block on the batch's own thread
    assert np.array_equal(answers[0][0], expected_species)
    assert np.array_equal(answers[0][1], expected_probabilities)


def test_a_forked_worker_shares_a_large_batch_with_threads_of_its_own(default_models):
    """gunicorn forks its workers: a pool made before the fork has no threads in the child."""
    rows = _varied_rows(10_000)
    model = loaded(default_models["randomforest"])
    expected, _ = model.predict_with_proba(rows, with_proba=True)  # the parent's pool now exists
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (runs in the child)
        try:
            ran_on = set()
            run = model.onnx.session.run

            def counted(*args, **kwargs):
                ran_on.add(threading.current_thread().name)
                return run(*args, **kwargs)

            model.onnx.session.run = counted
            species, _ = model.predict_with_proba(rows, with_proba=True)
            os.write(writing, f"{np.array_equal(species, expected)} {len(ran_on)}".encode())
        finally:
            os._exit(0)
    os.close(writing)
    ready = []
    try:
        ready, _, _ = select.select([reading], [], [], 30)
        assert ready, "the forked process never finished its batch"
        assert os.read(reading, 100) == b"True 2"  # the same answers, on two threads
    finally:
        os.close(reading)
        if not ready:
            os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_convert_models_gives_an_older_version_the_fast_path(client, knn_model, artifacts_dir):
    from io import StringIO

    from django.core.management import call_command

    # As registered before the fast path existed: no ONNX file, runtime sklearn, no reason.
    (artifacts_dir / knn_model.onnx_path).unlink()
    ModelVersion.objects.filter(pk=knn_model.pk).update(runtime="sklearn", onnx_path="", onnx_sha256="")
    assert classify(client, "knn", ADELIE).status_code == 200
    assert next(iter(loaded_cache._items.values())).runtime == "sklearn"

    out = StringIO()
    call_command("convert_models", stdout=out)

    assert "knn v1: served by onnxruntime from registry/knn/v1/model.onnx" in out.getvalue()
    knn_model.refresh_from_db()
    assert knn_model.runtime == "onnx"
    assert sha256_file(artifacts_dir / knn_model.onnx_path) == knn_model.onnx_sha256
    response = classify(client, "knn", GENTOO)  # the registry changed: the worker reloads it
    assert response.json()["species_name"] == "Gentoo"
    assert loaded(knn_model).runtime == "onnx"


def test_the_version_detail_says_which_runtime_serves_it(api_client, knn_model, artifacts_dir):
    drop(artifacts_dir, "homemade", MajorityVote().fit(dataset_load(DATA).features(), dataset_load(DATA).target()))
    sync.registry_sync()

    fast = api_client.get("/api/v1/models/knn/versions/1").json()
    slow = api_client.get("/api/v1/models/homemade/versions/1").json()

    assert (fast["runtime"], fast["runtime_reason"]) == ("onnx", "")
    assert slow["runtime"] == "sklearn"
    assert "MajorityVote" in slow["runtime_reason"]


@pytest.mark.parametrize(
    "variable",
    [
        "PENGUIN_LOG_SYNC_COMMIT",
        "DATABASE_CONN_HEALTH_CHECKS",
        "DATABASE_HEALTH_CHECK_QUERY",
        "DATABASE_PREPARED_STATEMENTS",
        "PENGUIN_PREDICT_THREADS",
    ],
)
def test_a_bad_value_for_a_speed_switch_stops_start_up_naming_it(variable):
    from tests.support.processes import django_start as start

    result = start({variable: "sometimes"})

    assert result.returncode != 0
    assert variable in result.stderr


def test_generate_predictions_fills_the_log_to_the_total_with_real_answers(knn_model):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("generate_predictions", total=120, stdout=out)
    call_command("generate_predictions", total=100, stdout=out)  # already there: adds nothing

    assert Prediction.objects.count() == 120
    assert "120 rows added" in out.getvalue() and "0 rows added" in out.getvalue()
    row = Prediction.objects.order_by("?").first()
    model = loaded(knn_model)
    matrix = np.array(
        [
            [
                row.inputs[field]
                for field in (
                    "island",
                    "bill_length_mm",
                    "bill_depth_mm",
                    "flipper_length_mm",
                    "body_mass_g",
                    "sex",
                    "year",
                )
            ]
        ],
        dtype=float,
    )
    assert row.species_id == model.predict(matrix)[0]  # the model's own answer to that penguin
    ids = list(Prediction.objects.order_by("id").values_list("created_at", flat=True))
    assert ids == sorted(ids)  # ids and times grow together, as in a real log

    call_command("generate_predictions", total=10, clear=True, stdout=out)
    assert Prediction.objects.count() == 10
