"""Edge input an independent test found answered with a 500 or silently accepted.

Each is a 4xx JSON naming what was wrong, and nothing stored changes.
"""

from __future__ import annotations

import base64
import json
import socket

import pytest
from django.db import connection

from classifier.models import MLModel, Prediction
from tests.support.data import ADELIE
from tests.support.models import uses_postgres
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


def assert_json_error(response, statuses: set[int]) -> dict:
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert body["detail"] and body["code"]
    return body


def cursor(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("path", ["/api/v1/predictions", "/api/v1/training-runs"])
@pytest.mark.parametrize("position", ["p=abc", "o=1&p=abc", "p=1.5", "p=%D9%A1", "p=" + "9" * 40])
def test_a_cursor_whose_position_is_not_a_whole_number_is_a_400_naming_the_cursor(
    staff_client, knn_model, path, position
):
    """Not a 500 from the query it would reach: the 400 every cursor that is not one of ours gets."""
    client = staff_client
    client.post("/classify/knn", ADELIE, format="json")
    body = assert_json_error(client.get(path, {"cursor": cursor(position)}), {400})
    assert "Invalid cursor" in body["errors"]["cursor"][0], body


@pytest.mark.parametrize("depth", [100, 600, 900])
def test_params_nested_deeply_are_400_naming_params_and_record_nothing(staff_client, depth):
    params: dict = {}
    for _ in range(depth):
        params = {"n": params}
    body = f'{{"algorithm": "knn", "params": {json.dumps({"metric_params": params})}}}'
    response = staff_client.post("/api/v1/training-runs", body, content_type="application/json")
    body = assert_json_error(response, {400})
    assert body.get("errors"), body
    assert TrainingRun.objects.count() == 0


@pytest.mark.parametrize("name", ["knn\n", "knn\r\n", "\nknn"])
def test_a_model_name_with_a_newline_is_400_and_creates_nothing(staff_client, name, artifacts_dir):
    response = staff_client.post("/api/v1/training-runs", {"algorithm": "knn", "name": name}, format="json")
    assert "name" in assert_json_error(response, {400})["errors"]
    assert TrainingRun.objects.count() == 0 and MLModel.objects.count() == 0
    assert not (artifacts_dir / "registry").exists() or not any((artifacts_dir / "registry").iterdir())


# "١" (Arabic-Indic one), "１" (full-width one), a sign: int() reads each of them as 1.
# Sequences start again at 1 for each case (PostgreSQL's do not roll back with a test's transaction).
@pytest.mark.django_db(transaction=True, reset_sequences=True)
@pytest.mark.parametrize("number", ["%D9%A1", "%EF%BC%91", "+1", "%2B1", "%E2%81%A1", " 1", "1%20"])
def test_ids_written_with_other_digits_or_a_sign_are_404_and_change_nothing(staff_client, knn_model, number):
    client = staff_client
    prediction_id = client.post("/classify/knn", ADELIE, format="json")["X-Prediction-Id"]
    assert prediction_id == "1"
    TrainingRun.objects.create(model_name="other", algorithm="knn", data_path="x", trigger="api", status="failed")
    for method, path, body in [
        ("GET", f"/api/v1/predictions/{number}", None),
        ("POST", f"/api/v1/predictions/{number}/feedback", {"species": 2}),
        ("GET", f"/api/v1/training-runs/{number}", None),
        ("GET", f"/api/v1/models/knn/versions/{number}", None),
        ("POST", f"/api/v1/models/knn/versions/{number}/activate", {"reason": "by another digit"}),
    ]:
        response = client.generic(method, path, json.dumps(body or {}), content_type="application/json")
        assert_json_error(response, {404})
    assert Prediction.objects.get(pk=1).true_species_id is None
    assert knn_model.activations.count() == 1  # the registration's own


def test_the_activation_reason_schema_says_nul_is_refused(staff_client, knn_model):
    schema = staff_client.get("/api/schema/?format=json").json()
    reason = schema["components"]["schemas"]["ActivateRequestRequest"]["properties"]["reason"]
    patterns = [option.get("pattern", "") for option in reason.get("oneOf", [reason])]
    assert any("\\u0000" in pattern or "\\x00" in pattern for pattern in patterns), reason
    refused = staff_client.post("/api/v1/models/knn/versions/1/activate", {"reason": "a\x00b"}, format="json")
    assert "reason" in assert_json_error(refused, {400})["errors"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_copy_loses_its_connection_is_503_with_retry_after(staff_client, knn_model):
    import psycopg2

    assert uses_postgres()
    settings_dict = connection.settings_dict

    def cut_after_the_ids_are_reserved(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "nextval" in sql:
            pid = context["connection"].connection.info.backend_pid
            killer = psycopg2.connect(
                host=settings_dict["HOST"],
                port=settings_dict["PORT"] or 5432,
                user=settings_dict["USER"],
                password=settings_dict["PASSWORD"],
                dbname=settings_dict["NAME"],
            )
            killer.autocommit = True
            with killer.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", [pid])
            killer.close()
        return result

    staff_client.post("/api/v1/models/knn/predict", {"instances": [ADELIE] * 3}, format="json")  # warm
    before = Prediction.objects.count()
    with connection.execute_wrapper(cut_after_the_ids_are_reserved):
        response = staff_client.post("/api/v1/models/knn/predict", {"instances": [ADELIE] * 50}, format="json")
    body = assert_json_error(response, {503})
    assert body["code"] == "database_unavailable" and response["Retry-After"]
    connection.close()
    assert Prediction.objects.count() == before


def test_a_chunked_request_body_is_refused_with_411_json_or_read_whole(live_stack):
    """gunicorn hands a chunked body over without a length; it must not be read as empty."""
    host, port = live_stack.url.removeprefix("http://").split(":")
    body = json.dumps({"reason": "sent in chunks"}).encode()
    chunks = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            b"POST /api/v1/models/knn/versions/1/activate HTTP/1.1\r\nHost: localhost\r\n"
            b"Authorization: Token " + live_stack.staff_token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if status == 411:
        assert b"application/json" in head.lower() and b'"code": "length_required"' in payload, answer[:500]
    else:
        assert status == 200, head
        versions = json.loads(
            live_stack.manage(
                "shell",
                "-c",
                "import json; from classifier.models import ModelActivation; "
                "print(json.dumps([a.reason for a in ModelActivation.objects.order_by('id')]))",
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        assert versions[-1] == "sent in chunks"
