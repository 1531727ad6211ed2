"""Real Open Inference Protocol clients against a live gunicorn: tritonclient and the kserve SDK.

Both must classify the example penguins as ``/classify`` does. The kserve SDK pins versions
that clash with ours (protobuf, pandas), so it runs in a venv of its own under ``var/``
(``tests/support/kserve_client.py``, built by ``make test`` before the suite). The same live
server shows that the docs' static files are served.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from core.encoding import EXAMPLES, FIELDS
from tests.support.kserve_client import kserve_python
from tests.support.service import gunicorn, manage, service_env

CLIENTS = Path(__file__).resolve().parent / "clients"

NAMES = ("Adelie", "Chinstrap", "Gentoo")
MATRIX = np.array([[EXAMPLES[name][field] for field in FIELDS] for name in NAMES], dtype=np.float64)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """gunicorn on SQLite with ``knn`` trained and the static files collected."""
    env = service_env(tmp_path_factory.mktemp("v2-live"))
    manage(env, "migrate", "--noinput")
    manage(env, "collectstatic", "--noinput", "-v0")
    manage(env, "train_model", "knn")
    with gunicorn(env, workers=1, threads=2) as live:
        yield live


@pytest.fixture(scope="module")
def classify_answers(server) -> list[int]:
    return [post_json(f"{server.url}/classify/knn", EXAMPLES[name])["species_id"] for name in NAMES]


def test_tritonclient_health_and_metadata(server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("knn")
        assert not client.is_model_ready("nope")
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        metadata = client.get_model_metadata("knn")
        assert metadata["versions"] == ["1"]
        assert metadata["inputs"][0]["shape"] == [-1, 7]
    finally:
        client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_classifies_an_n_by_7_tensor_as_classify_does(server, classify_answers, binary):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        tensor = httpclient.InferInput("penguins", list(MATRIX.shape), "FP32")
        tensor.set_data_from_numpy(MATRIX.astype(np.float32), binary_data=binary)
        outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in ("predict", "predict_proba")]
        result = client.infer("knn", [tensor], outputs=outputs, request_id="triton-1")
        assert result.as_numpy("predict").tolist() == classify_answers == [1, 2, 3]
        proba = result.as_numpy("predict_proba")
        assert proba.shape == (3, 3) and np.allclose(proba.sum(axis=1), 1.0)
        response = result.get_response()
        assert response["id"] == "triton-1" and response["model_version"] == "1"
        # By default (no outputs named) tritonclient asks for every output as binary data.
        default = client.infer("knn", [tensor], model_version="1")
        assert default.as_numpy("predict").tolist() == classify_answers
    finally:
        client.close()


def test_tritonclient_one_tensor_per_field_with_bytes_names(server, classify_answers):
    import tritonclient.http as httpclient

    names = {"island": {1: "Torgersen", 2: "Biscoe", 3: "Dream"}, "sex": {0: "female", 1: "male"}}
    inputs = []
    for position, field in enumerate(FIELDS):
        column = MATRIX[:, position]
        if field in names:
            tensor = httpclient.InferInput(field, [len(column)], "BYTES")
            tensor.set_data_from_numpy(np.array([names[field][int(v)].encode() for v in column], dtype=object))
        else:
            tensor = httpclient.InferInput(field, [len(column), 1], "FP64")
            tensor.set_data_from_numpy(column.reshape(-1, 1))
        inputs.append(tensor)
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        result = client.infer("knn", inputs)
        assert result.as_numpy("predict").tolist() == classify_answers
    finally:
        client.close()


def test_tritonclient_sees_a_bad_value_as_an_error_naming_field_and_row(server):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    bad = MATRIX.copy()
    bad[2, 0] = 4
    tensor = httpclient.InferInput("penguins", list(bad.shape), "FP64")
    tensor.set_data_from_numpy(bad)
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        with pytest.raises(InferenceServerException, match=r"island \(row 2\)"):
            client.infer("knn", [tensor])
    finally:
        client.close()


def test_the_docs_static_files_are_served(server):
    for page in ("/api/docs/", "/api/redoc/"):
        status, html = get(server.url + page)
        assert status == 200
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html.decode())
        assert assets
        for asset in assets:
            assert get(server.url + asset)[0] == 200, asset


@pytest.mark.slow
def test_the_kserve_rest_client_classifies_as_classify_does(server, classify_answers):
    result = subprocess.run(
        [str(kserve_python()), str(CLIENTS / "kserve_infer.py"), server.url, "knn"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["live"] is True and answer["ready"] is True and answer["model_ready"] is True
    assert answer["id"] == "kserve-1"
    # (kserve's InferResponse.from_bytes drops model_version; the tritonclient tests check it.)
    assert answer["matrix"]["predict"] == classify_answers == [1, 2, 3]
    assert np.allclose(np.array(answer["matrix"]["predict_proba"]).sum(axis=1), 1.0)
    assert answer["by_field"]["predict"] == classify_answers
