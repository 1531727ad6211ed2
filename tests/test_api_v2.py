"""The Open Inference Protocol (/v2) as its spec shapes it, through the DRF test client."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from classifier.models import Prediction
from core.encoding import FIELDS
from tests.support.data import ADELIE, CHINSTRAP, DATA, GENTOO
from tests.support.models import register_result

pytestmark = pytest.mark.django_db

PENGUINS = [ADELIE, CHINSTRAP, GENTOO]
MATRIX = [[penguin[field] for field in FIELDS] for penguin in PENGUINS]


def infer(client, body, path="/v2/models/knn/infer", **headers):
    return client.post(path, data=json.dumps(body), content_type="application/json", **headers)


def matrix_request(rows=MATRIX, datatype="FP32", **extra):
    data = [list(row) for row in rows]
    return {"inputs": [{"name": "penguins", "shape": [len(rows), 7], "datatype": datatype, "data": data}], **extra}


def per_field_request(penguins=PENGUINS, names=False):
    inputs = []
    for field in FIELDS:
        values = [penguin[field] for penguin in penguins]
        datatype = "FP64"
        if names and field == "island":
            values, datatype = [{1: "Torgersen", 2: "biscoe", 3: "DREAM"}[v] for v in values], "BYTES"
        elif names and field == "sex":
            values, datatype = [{0: "female", 1: "Male"}[v] for v in values], "BYTES"
        inputs.append({"name": field, "shape": [len(values), 1], "datatype": datatype, "data": values})
    return {"inputs": inputs}


def outputs(body) -> dict:
    return {output["name"]: output for output in body["outputs"]}


def test_server_metadata_names_the_server_and_its_extensions(api_client):
    response = api_client.get("/v2")
    assert response.status_code == 200
    assert response.json()["name"] == "penguin-classifier"
    assert response.json()["version"]
    assert response.json()["extensions"] == ["binary_tensor_data"]


def test_live_and_ready_answer_200(api_client):
    assert api_client.get("/v2/health/live").json() == {"live": True}
    assert api_client.get("/v2/health/ready").json() == {"ready": True}


def test_model_metadata_lists_versions_platform_and_tensors(api_client, knn_model):
    body = api_client.get("/v2/models/knn").json()
    assert body["name"] == "knn"
    assert body["versions"] == ["1"]
    assert body["platform"] in {"sklearn", "onnxruntime"}
    assert body["inputs"] == [
        {"name": "penguins", "datatype": "FP64", "shape": [-1, 7], "parameters": {"fields": list(FIELDS)}}
    ]
    by_name = {tensor["name"]: tensor for tensor in body["outputs"]}
    assert by_name["predict"] == {"name": "predict", "datatype": "INT64", "shape": [-1]}
    assert by_name["predict_proba"]["shape"] == [-1, 3]
    assert by_name["predict_proba"]["parameters"]["species"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert api_client.get("/v2/models/knn/versions/1").json()["versions"] == ["1"]


def test_unknown_model_or_version_is_a_404_error(api_client, knn_model):
    for path in ("/v2/models/nope", "/v2/models/knn/versions/9", "/v2/models/knn/versions/x/ready"):
        response = api_client.get(path)
        assert response.status_code == 404, path
        assert set(response.json()) == {"error"}
    assert infer(api_client, matrix_request(), path="/v2/models/nope/infer").status_code == 404


def test_model_ready(api_client, knn_model):
    assert api_client.get("/v2/models/knn/ready").json() == {"name": "knn", "ready": True}
    assert api_client.get("/v2/models/knn/versions/1/ready").status_code == 200


def test_infer_with_one_n_by_7_tensor_answers_ids_and_probabilities(api_client, knn_model):
    response = infer(api_client, matrix_request(id="req-1"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_name"] == "knn"
    assert body["model_version"] == "1"
    assert body["id"] == "req-1"
    result = outputs(body)
    assert set(result) == {"predict", "predict_proba"}
    assert result["predict"] == {"name": "predict", "datatype": "INT64", "shape": [3], "data": [1, 2, 3]}
    proba = result["predict_proba"]
    assert proba["datatype"] == "FP64" and proba["shape"] == [3, 3]
    rows = np.array(proba["data"]).reshape(3, 3)
    assert np.allclose(rows.sum(axis=1), 1.0)
    assert rows.argmax(axis=1).tolist() == [0, 1, 2]


def test_infer_agrees_with_classify_and_v1_predict(api_client, default_models):
    for name in default_models:
        v2 = outputs(infer(api_client, matrix_request(datatype="FP64"), path=f"/v2/models/{name}/infer").json())
        v1 = api_client.post(f"/api/v1/models/{name}/predict", {"instances": PENGUINS}, format="json").json()
        assert v2["predict"]["data"] == [row["species_id"] for row in v1["predictions"]], name
        for penguin, species in zip(PENGUINS, v2["predict"]["data"]):
            assert api_client.post(f"/classify/{name}", penguin, format="json").json()["species_id"] == species


def test_flat_data_is_read_row_major(api_client, knn_model):
    flat = [value for row in MATRIX for value in row]
    body = infer(
        api_client,
        matrix_request(rows=MATRIX) | {"inputs": [{"name": "x", "shape": [3, 7], "datatype": "FP64", "data": flat}]},
    ).json()
    assert outputs(body)["predict"]["data"] == [1, 2, 3]


def test_one_tensor_per_field_with_names_for_island_and_sex(api_client, knn_model):
    response = infer(api_client, per_field_request(names=True))
    assert response.status_code == 200, response.content
    assert outputs(response.json())["predict"]["data"] == [1, 2, 3]
    flat = per_field_request()
    for tensor in flat["inputs"]:
        tensor["shape"] = [3]
    assert outputs(infer(api_client, flat).json())["predict"]["data"] == [1, 2, 3]


def test_every_row_is_logged_with_the_infer_endpoint(api_client, knn_model):
    before = Prediction.objects.count()
    infer(api_client, matrix_request())
    rows = list(Prediction.objects.order_by("id")[before:])
    assert [row.endpoint for row in rows] == ["infer"] * 3
    assert [row.species_id for row in rows] == [1, 2, 3]
    assert rows[0].inputs == ADELIE


def test_fp32_values_are_logged_as_the_client_wrote_them(api_client, knn_model):
    header, blob = binary_request(np.array(MATRIX[:1], dtype=np.float32))
    post_binary(api_client, header, blob)
    assert Prediction.objects.latest("id").inputs["bill_length_mm"] == ADELIE["bill_length_mm"]


def test_a_bad_value_is_a_400_naming_field_and_row_and_nothing_is_logged(api_client, knn_model):
    rows = [list(row) for row in MATRIX]
    rows[1][0] = 4
    response = infer(api_client, matrix_request(rows=rows))
    assert response.status_code == 400
    message = response.json()["error"]
    assert "island (row 1)" in message and "Out of range" in message
    assert set(response.json()) == {"error"}
    assert not Prediction.objects.exists()


def test_an_unknown_island_name_is_a_400_naming_field_and_row(api_client, knn_model):
    request = per_field_request(names=True)
    request["inputs"][0]["data"][2] = "Atlantis"
    response = infer(api_client, request)
    assert response.status_code == 400
    assert "island (row 2): Unknown name 'Atlantis'" in response.json()["error"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda r: r.update(inputs=[]), "inputs"),
        (lambda r: r["inputs"][0].update(shape=[21]), "[N, 7]"),
        (lambda r: r["inputs"][0].update(shape=[4, 7]), "holds 28 values"),
        (lambda r: r["inputs"][0].update(datatype="INT64"), "FP32 or FP64"),
        (lambda r: r["inputs"][0].update(datatype="BOOL"), "not accepted"),
        (lambda r: r["inputs"][0].update(datatype={}), "not accepted"),
        (lambda r: r["inputs"][0].pop("data"), "data is required"),
        (lambda r: r["inputs"][0]["data"][0].__setitem__(1, "long"), "must be numbers"),
        (lambda r: r.update(id=7), '"id" must be a string'),
        (lambda r: r.update(outputs=[{"name": "species"}]), "unknown output"),
        (lambda r: r["inputs"][0].update(parameters={"binary_data_size": 12}), "not both"),
        (lambda r: r.update(id=None), '"id" must be a string'),
        (lambda r: r.update(parameters=None), '"parameters" must be a JSON object'),
        (lambda r: r["inputs"][0].update(parameters=None), 'parameters" must be a JSON object'),
        (lambda r: r.update(outputs=None), '"outputs" must be a non-empty list'),
        (lambda r: r.update(outputs=[]), '"outputs" must be a non-empty list'),
        (lambda r: r.update(outputs=[{"name": "predict", "parameters": None}]), "outputs[0].parameters"),
        (lambda r: r["inputs"][0].update(shape=[1], data=5.0), "data must be a list"),
    ],
)
def test_malformed_requests_are_400_with_an_error_message(api_client, knn_model, change, words):
    request = matrix_request()
    change(request)
    response = infer(api_client, request)
    assert response.status_code == 400, response.content
    assert words in response.json()["error"]


def test_per_field_inputs_must_all_be_there_once_with_one_length(api_client, knn_model):
    request = per_field_request()
    request["inputs"].pop()  # year
    assert "Missing input year" in infer(api_client, request).json()["error"]
    request = per_field_request()
    request["inputs"][1]["datatype"] = "BYTES"
    request["inputs"][1]["data"] = ["39.1", "46.5", "46.1"]
    assert "BYTES is accepted for island and sex only" in infer(api_client, request).json()["error"]
    request = per_field_request()
    request["inputs"][3] = {"name": "flipper_length_mm", "shape": [2], "datatype": "FP64", "data": [181, 192]}
    assert "has 2 rows" in infer(api_client, request).json()["error"]
    request = per_field_request()
    request["inputs"].append({"name": "beak", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]})
    assert "Unknown input 'beak'" in infer(api_client, request).json()["error"]


def test_body_that_is_not_json_is_a_400(api_client, knn_model):
    response = api_client.post("/v2/models/knn/infer", data=b"{nope", content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_too_many_rows_is_a_413(api_client, knn_model, settings):
    settings.PENGUIN_MAX_BATCH = 2
    response = infer(api_client, matrix_request())
    assert response.status_code == 413
    assert "PENGUIN_MAX_BATCH" in response.json()["error"]


def test_outputs_can_be_chosen(api_client, knn_model):
    body = infer(api_client, matrix_request(outputs=[{"name": "predict"}, {"name": "prediction_id"}])).json()
    result = outputs(body)
    assert set(result) == {"predict", "prediction_id"}
    logged = list(Prediction.objects.order_by("id").values_list("id", flat=True))
    assert result["prediction_id"]["data"] == logged


def test_a_model_without_probabilities_answers_predict_alone_unless_asked(api_client, db):
    from core.datasets import dataset_load
    from training.trainer import train

    result = train(algorithm="svm", dataset=dataset_load(DATA), params={"probability": False})
    register_result("plain-svm", result)
    path = "/v2/models/plain-svm/infer"
    body = infer(api_client, matrix_request(), path=path).json()
    assert set(outputs(body)) == {"predict"}
    assert outputs(body)["predict"]["data"] == [1, 2, 3]
    response = infer(api_client, matrix_request(outputs=[{"name": "predict_proba"}]), path=path)
    assert response.status_code == 409
    assert "does not estimate probabilities" in response.json()["error"]


def test_versioned_infer_uses_that_version(api_client, knn_model):
    body = infer(api_client, matrix_request(), path="/v2/models/knn/versions/1/infer").json()
    assert body["model_version"] == "1"


def test_rate_limit_applies_and_answers_in_the_protocol_shape(api_client, knn_model, settings):
    from django.core.cache import cache

    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "2/min", "user": "2/min"}}
    statuses = [infer(api_client, matrix_request()).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = infer(api_client, matrix_request())
    assert set(response.json()) == {"error"} and "throttled" in response.json()["error"]
    assert int(response["Retry-After"]) >= 1
    cache.clear()


# --- the binary tensor data extension ----------------------------------------------------------


def binary_request(array: np.ndarray, **extra) -> tuple[dict, bytes]:
    blob = array.tobytes()
    datatype = {"float32": "FP32", "float64": "FP64"}[array.dtype.name]
    header = {
        "inputs": [
            {
                "name": "penguins",
                "shape": list(array.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(blob)},
            }
        ],
        **extra,
    }
    return header, blob


def post_binary(client, header: dict, blob: bytes, path="/v2/models/knn/infer"):
    text = json.dumps(header).encode()
    return client.post(
        path,
        data=text + blob,
        content_type="application/octet-stream",
        HTTP_INFERENCE_HEADER_CONTENT_LENGTH=str(len(text)),
    )


def test_binary_inputs_and_outputs(api_client, knn_model):
    header, blob = binary_request(np.array(MATRIX, dtype=np.float32), parameters={"binary_data_output": True})
    response = post_binary(api_client, header, blob)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/octet-stream"
    size = int(response["Inference-Header-Content-Length"])
    body = json.loads(response.content[:size])
    tail = response.content[size:]
    result = outputs(body)
    predict_size = result["predict"]["parameters"]["binary_data_size"]
    assert "data" not in result["predict"]
    assert np.frombuffer(tail[:predict_size], dtype="<i8").tolist() == [1, 2, 3]
    proba = np.frombuffer(tail[predict_size:], dtype="<f8").reshape(3, 3)
    assert proba.argmax(axis=1).tolist() == [0, 1, 2]


def test_binary_bytes_tensors_for_island_and_sex(api_client, knn_model):
    request = per_field_request(names=True)
    blobs = b""
    for tensor in request["inputs"]:
        if tensor["datatype"] == "BYTES":
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in tensor.pop("data"))
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs += raw
    response = post_binary(api_client, request, blobs)
    assert response.status_code == 200, response.content
    assert outputs(response.json())["predict"]["data"] == [1, 2, 3]


def test_binary_size_that_does_not_match_is_a_400(api_client, knn_model):
    header, blob = binary_request(np.array(MATRIX, dtype=np.float64))
    response = post_binary(api_client, header, blob[:-8])
    assert response.status_code == 400
    assert "binary_data_size" in response.json()["error"]
