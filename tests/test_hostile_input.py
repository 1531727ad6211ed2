"""Hostile input: oversized bodies, odd model names and ids, and what error bodies give away.

Bad penguin bodies, non-JSON and odd names on /classify are in test_compat_api.py; the
parser's properties in test_input_properties.py; oversized batches in test_api_predict.py.
Run against PostgreSQL in CI, where a NUL character in a query is an error of its own.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from classifier.models import MLModel, ModelVersion, Prediction
from tests.support.data import ADELIE, DATA
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

ODD_NAMES = [
    "..%2F..%2Fetc%2Fpasswd",
    "..%5C..%5Cwindows",
    "%2E%2E",
    "knn%00",
    "%00",
    "kn%0An",
    "p%C3%A9nguin",
    "%F0%9F%90%A7",  # a penguin emoji
    "%FF%FE",  # not UTF-8
    "a" * 300,
    "KNN",
    "knn%20",
    "knn;drop table",
    "%25",
]


@pytest.fixture
def staff(staff_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff_user).key}")
    return client


@pytest.fixture
def reader(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def assert_json_error(response, statuses: set[int]) -> dict:
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert body["detail"] and body["code"]
    return body


# --- bodies over the limit ------------------------------------------------------------------


def big_body(size: int) -> bytes:
    return json.dumps({**ADELIE, "padding": "x" * size}).encode()


@pytest.mark.parametrize(
    "path",
    [
        "/classify/knn",
        "/api/v1/models/knn/predict",
        "/api/v1/training-runs/",
        "/api/v1/models/knn/versions/1/activate",
        "/api/v1/predictions/1/feedback",
    ],
)
def test_a_body_over_the_limit_is_413_and_nothing_is_done(staff, knn_model, settings, path):
    prediction_id = staff.post("/classify/knn", ADELIE, format="json")["X-Prediction-Id"]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    response = staff.generic(
        "POST", path.replace("/1/feedback", f"/{prediction_id}/feedback"), big_body(64 * 1024), "application/json"
    )
    body = assert_json_error(response, {413})
    assert body["code"] == "payload_too_large"
    assert "PENGUIN_MAX_BODY_BYTES" in body["detail"]
    assert Prediction.objects.count() == 1 and TrainingRun.objects.count() == 0
    assert Prediction.objects.get().feedback_at is None


def test_a_form_body_over_the_limit_on_the_admin_login_is_refused(settings, knn_model):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    response = Client().post("/admin/login/", {"username": "x", "password": "y" * 64 * 1024})
    assert_json_error(response, {400, 413})


def test_a_declared_length_of_a_terabyte_is_refused_before_anything_is_read(live_stack):
    """The server answers 413 at once; it never waits for (or buffers) the announced bytes."""
    host, port = live_stack.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /api/v1/models/knn/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000000000000\r\nConnection: close\r\n\r\n{"island": 1'
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["code"] == "payload_too_large"


# --- odd model names, versions and ids on every route ---------------------------------------


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_model_names_are_404_or_400_on_every_model_route(staff, knn_model, name):
    for method, path in [
        ("GET", f"/api/v1/models/{name}"),
        ("GET", f"/api/v1/models/{name}/versions"),
        ("GET", f"/api/v1/models/{name}/versions/1"),
        ("POST", f"/api/v1/models/{name}/predict"),
        ("POST", f"/api/v1/models/{name}/versions/1/activate"),
        ("POST", f"/classify/{name}"),
    ]:
        response = staff.generic(method, path, json.dumps(ADELIE), content_type="application/json")
        assert_json_error(response, {400, 404})
    assert Prediction.objects.count() == 0
    assert list(MLModel.objects.values_list("name", flat=True)) == ["knn"]


@pytest.mark.parametrize("number", ["0", "-1", "1.5", "%00", "99999999999999999999", "1e3", "one", "2%2F..%2F1"])
def test_odd_version_numbers_are_404_or_400(staff, knn_model, number):
    for method, path in [
        ("GET", f"/api/v1/models/knn/versions/{number}"),
        ("POST", f"/api/v1/models/knn/versions/{number}/activate"),
        ("POST", f"/api/v1/models/knn/predict?version={number}"),
    ]:
        response = staff.generic(method, path, json.dumps(ADELIE), content_type="application/json")
        assert_json_error(response, {400, 404})
    knn_model.refresh_from_db()
    assert knn_model.status == "active"


@pytest.mark.parametrize("pk", ["0", "-1", "abc", "%00", "99999999999999999999", "1%20OR%201=1"])
def test_odd_ids_of_predictions_and_runs_are_404(staff, knn_model, pk):
    for method, path in [
        ("GET", f"/api/v1/predictions/{pk}"),
        ("POST", f"/api/v1/predictions/{pk}/feedback"),
        ("GET", f"/api/v1/training-runs/{pk}"),
    ]:
        response = staff.generic(method, path, json.dumps({"species": 1}), content_type="application/json")
        assert_json_error(response, {400, 404})


@pytest.mark.parametrize(
    "query",
    [
        "model=%00",
        "model=" + "a" * 300,
        "species=%00",
        "version=%00",
        "version=99999999999999999999",
        "created_after=%00",
        "created_after=0000-00-00",
        "cursor=%00",
        "cursor=" + quote("../../etc/passwd"),
        "page_size=%00",
        "page_size=-1",
        "ordering=password",
    ],
)
def test_odd_filters_on_the_prediction_log_are_answered_in_json(reader, knn_model, query):
    response = reader.get(f"/api/v1/predictions?{query}")
    assert response.status_code in {200, 400, 404}, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "moment",
    [
        "0272-06-23T22:57:03+19:09",
        "1136-10-12T09:47:31-17:57",
        "0001-01-01T00:00:00+10:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:00:00-10:00",
    ],
)
def test_times_with_any_offset_or_at_the_ends_of_the_calendar_filter_the_log(reader, knn_model, moment):
    """ISO 8601 allows offsets PostgreSQL does not, and instants Python cannot hold in UTC."""
    for name in ("created_after", "created_before"):
        response = reader.get(f"/api/v1/predictions?{name}={quote(moment)}")
        assert response.status_code == 200, response.content
    response = reader.get(f"/api/v1/models/knn/activations?at={quote(moment)}")
    assert response.status_code == 200, response.content
    assert datetime.fromisoformat(response.json()["at"]) <= datetime.max.replace(tzinfo=UTC)
    response = reader.get(f"/api/v1/models/knn/monitoring?until={quote(moment)}")
    assert response.status_code == 200, response.content
    response = reader.get(f"/api/v1/models/knn/monitoring?since={quote(moment)}")
    if moment.startswith("9999"):  # a window that would start after it ends
        assert response.status_code == 400 and "since" in response.json()["errors"], response.content
    else:
        assert response.status_code == 200, response.content


@pytest.mark.parametrize("query", ["algorithm=%00", "status=%00", "model_name=%00", "source=%00"])
def test_odd_filters_on_models_and_runs_are_answered_in_json(staff, knn_model, query):
    for path in ("/api/v1/models", "/api/v1/training-runs", "/api/v1/models/knn/versions"):
        response = staff.get(f"{path}?{query}")
        assert response.status_code in {200, 400}, (path, response.status_code, response.content[:300])
        assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"algorithm": "knn", "name": "../../etc"}, "name"),
        ({"algorithm": "knn", "name": "knn\u0000"}, "name"),
        ({"algorithm": "knn", "name": "a" * 300}, "name"),
        ({"algorithm": "knn", "name": "pingüino"}, "name"),
        ({"algorithm": "knn", "params": {"metric_params": {"p\u0000": 1}}}, "params"),
        ({"algorithm": "knn", "params": {"n_neighbors": "\u0000"}}, "params"),
        ({"algorithm": "knn", "params": {"n_neighbors": -1}}, "n_neighbors"),
        ({"algorithm": "knn", "params": {"__class__": "os.system"}}, "__class__"),
        ({"algorithm": "../knn"}, "algorithm"),
        ({"algorithm": "knn", "seed": 2**31}, "seed"),
        ({"algorithm": "knn", "seed": "42"}, "seed"),
        ({"algorithm": "knn", "test_size": "0.3"}, "test_size"),
        ({"algorithm": "knn", "name": 0}, "name"),
    ],
)
def test_hostile_training_requests_are_400_naming_the_field_and_record_nothing(staff, body, field):
    response = staff.post("/api/v1/training-runs/", body, format="json")
    errors = assert_json_error(response, {400})["errors"]
    assert field in errors, errors
    assert TrainingRun.objects.count() == 0 and ModelVersion.objects.count() == 0


@pytest.mark.parametrize("reason", [0, ["x"], "\u00a0" * 501, "x" * 501])
def test_an_activation_reason_that_is_not_a_short_text_is_400_and_activates_nothing(staff, knn_model, reason):
    response = staff.post("/api/v1/models/knn/versions/1/activate", {"reason": reason}, format="json")
    assert "reason" in assert_json_error(response, {400})["errors"]
    assert knn_model.activations.count() == 1  # the registration's own


@pytest.mark.parametrize(
    "params",
    # 300 neighbours: within the dataset's 333 rows, more than the 266 it trains on.
    [{"n_neighbors": 300}, {"metric": "precomputed"}],
)
def test_params_that_only_fail_in_training_end_in_a_failed_run_with_the_reason(staff, params):
    response = staff.post("/api/v1/training-runs/", {"algorithm": "knn", "params": params}, format="json")
    assert response.status_code == 202, response.content
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.FAILED and run.error
    assert "Traceback" not in run.error
    assert ModelVersion.objects.count() == 0


@pytest.mark.parametrize(
    "algorithm,params,field",
    [
        # Accepted before: a forest drawing 232 million rows per tree held a worker at over 1 GB.
        ("randomforest", {"max_samples": 232164614}, "max_samples"),
        ("randomforest", {"max_samples": 1000.0}, "max_samples"),
        ("randomforest", {"min_samples_leaf": 10**6}, "min_samples_leaf"),
        ("knn", {"n_neighbors": 10**100}, "n_neighbors"),
        ("knn", {"n_neighbors": 500}, "n_neighbors"),
    ],
)
def test_params_beyond_the_size_of_the_dataset_are_400_naming_the_parameter(staff, algorithm, params, field):
    response = staff.post("/api/v1/training-runs/", {"algorithm": algorithm, "params": params}, format="json")
    errors = assert_json_error(response, {400})["errors"]
    assert field in errors, errors
    assert "the dataset has 333 rows" in errors[field][0]
    assert TrainingRun.objects.count() == 0
    schema = staff.get("/api/schema/?format=json").json()["components"]["schemas"]["TrainingRunCreateRequest"]
    published = next(v for v in schema["oneOf"] if v["title"] == algorithm)["properties"]["params"]["properties"]
    assert "333" in json.dumps(published[field]), published[field]


def test_a_run_that_outgrows_the_memory_ceiling_fails_saying_so(staff, settings):
    settings.PENGUIN_WORKER_MAX_MEMORY_MB = 64  # below what this process already holds
    response = staff.post("/api/v1/training-runs/", {"algorithm": "randomforest", "name": "rf-big"}, format="json")
    assert response.status_code == 202, response.content
    run = TrainingRun.objects.get(model_name="rf-big")
    assert run.status == TrainingRun.Status.FAILED
    assert "more memory than the worker's ceiling of 64 MB (PENGUIN_WORKER_MAX_MEMORY_MB" in run.error
    assert ModelVersion.objects.count() == 0


def test_a_training_request_cannot_choose_the_data_file_or_where_files_are_written(staff, settings, artifacts_dir):
    response = staff.post(
        "/api/v1/training-runs/",
        {
            "algorithm": "knn",
            "data": "/etc/passwd",
            "data_path": "/etc/passwd",
            "artifact_path": "/tmp/evil.pkl",
            "artifacts_dir": "/tmp",
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    run = TrainingRun.objects.get()
    assert run.data_path == str(settings.PENGUIN_DATA_PATH) == str(DATA)
    version = run.version
    assert (artifacts_dir / version.artifact_path).is_file()
    assert version.artifact_path.startswith("registry/knn/v1/")


# --- what errors give away ----------------------------------------------------------------------


def test_an_unexpected_error_is_a_json_500_without_traceback_or_message(knn_model, monkeypatch, artifacts_dir):
    import classifier.api.compat as compat

    def explode(**kwargs):
        raise RuntimeError(f"secret detail at {artifacts_dir}/registry")

    monkeypatch.setattr(compat, "prediction_make", explode)
    response = Client(raise_request_exception=False).post("/classify/knn", ADELIE, content_type="application/json")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal error; it has been logged.", "code": "server_error"}


def test_no_answer_names_the_artifacts_folder_or_shows_a_traceback(staff, reader, knn_model, artifacts_dir, settings):
    """Every read endpoint and a battery of failing requests, as staff."""
    junk = artifacts_dir / "models" / "junk_model.pkl"
    junk.parent.mkdir(parents=True, exist_ok=True)
    junk.write_bytes(b"\x80\x04not a pickle at all")
    prediction = staff.post("/api/v1/models/knn/predict", ADELIE, format="json").json()["predictions"][0]
    staff.post("/api/v1/training-runs/", {"algorithm": "knn", "name": "knn-b"}, format="json")
    tampered = ModelVersion.objects.create(
        model=knn_model.model, number=2, artifact_path="registry/knn/v2/model.joblib", sha256="0" * 64, size_bytes=1
    )
    (artifacts_dir / tampered.artifact_path).parent.mkdir(parents=True)
    (artifacts_dir / tampered.artifact_path).write_bytes(b"tampered")
    answers = [
        staff.get("/models"),
        staff.get("/api/v1/models"),
        staff.get("/api/v1/models/knn"),
        staff.get("/api/v1/models/knn/versions"),
        staff.get("/api/v1/models/knn/versions/1"),
        staff.get("/api/v1/models/junk/versions/1"),
        staff.get("/api/v1/training-runs"),
        staff.get(f"/api/v1/predictions/{prediction['prediction_id']}"),
        staff.post("/api/v1/registry/sync"),
        staff.post("/classify/junk", ADELIE, format="json"),
        staff.post("/api/v1/models/junk/predict", ADELIE, format="json"),
        staff.post("/api/v1/models/knn/predict?version=2", ADELIE, format="json"),
        staff.post("/api/v1/models/knn/versions/2/activate", {}, format="json"),
        staff.post("/api/v1/training-runs/", {"algorithm": "knn", "params": {"nope": 1}}, format="json"),
        staff.generic("POST", "/classify/knn", b'{"island": NaN}', content_type="application/json"),
        staff.get("/no/such/page"),
        staff.get("/readyz"),
    ]
    for response in answers:
        text = response.content.decode()
        assert "Traceback" not in text and 'File "' not in text, text[:500]
        assert str(artifacts_dir) not in text, (response.wsgi_request.path, text[:500])
        assert str(settings.BASE_DIR) not in text.replace(str(DATA), ""), (response.wsgi_request.path, text[:500])
    statuses = [response.status_code for response in answers]
    assert 500 not in statuses, statuses
