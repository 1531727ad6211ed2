"""The OpenAPI schema: valid, complete (every route, every error) and served with its docs."""

from __future__ import annotations

import re
from io import StringIO

import pytest
import yaml
from django.contrib.admindocs.views import simplify_regex
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

DOCUMENTED_PREFIXES = ("/api/v1/", "/models", "/classify", "/v2")
STAFF_WRITES = {
    ("post", "/api/v1/models/{model_name}/versions/{number}/activate"),
    ("post", "/api/v1/registry/sync"),
    ("post", "/api/v1/predictions/{id}/feedback"),
    ("post", "/api/v1/training-runs"),
}


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        out = StringIO()
        call_command("spectacular", "--validate", "--fail-on-warn", stdout=out, stderr=StringIO())
    return yaml.safe_load(out.getvalue())


def url_routes(patterns=None, prefix: str = "") -> list[str]:
    """Every route in the URL conf as an OpenAPI-style path (``/models/{name}/predict``)."""
    found = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        pattern = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found.extend(url_routes(entry.url_patterns, pattern))
        elif isinstance(entry, URLPattern):
            path = simplify_regex(pattern.replace("^", "").replace("$", ""))
            found.append(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path))
    return found


def normalised(path: str) -> str:
    # drf-spectacular names a primary-key parameter {id} (SCHEMA_COERCE_PATH_PK).
    return path.replace("{pk}", "{id}").rstrip("/") or "/"


def test_spectacular_validates_without_warnings(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["paths"]


def test_every_api_route_is_in_the_schema(schema):
    routes = [route for route in url_routes() if route.startswith(DOCUMENTED_PREFIXES)]
    assert len(routes) >= 12
    documented = {normalised(path) for path in schema["paths"]}
    missing = sorted({normalised(route) for route in routes} - documented)
    assert missing == []


def test_contract_paths_are_documented_as_the_contract_spells_them(schema):
    for path in ("/api/v1/models/{name}/predict", "/api/v1/training-runs", "/api/v1/predictions", "/models"):
        assert path in schema["paths"]


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method, path, operation


def test_every_operation_documents_its_errors_with_examples(schema):
    for method, path, operation in operations(schema):
        responses = operation["responses"]
        errors = {code for code in responses if code.startswith(("4", "5"))}
        assert errors, f"{method} {path} documents no error"
        assert "429" in responses, f"{method} {path}: 429"
        assert "Retry-After" in responses["429"]["headers"]
        for code in errors:
            content = responses[code]["content"]["application/json"]
            # The Open Inference Protocol has its own error body ({"error": ...}); its ready probes
            # answer 503 with their own body.
            shapes = {"InferenceError", "ServerReady", "ModelReady"} if path.startswith("/v2") else {"Error"}
            assert content["schema"] in [{"$ref": f"#/components/schemas/{s}"} for s in shapes], (
                f"{method} {path} {code}"
            )
            assert content.get("examples"), f"{method} {path} {code} has no example"
        if (method, path) in STAFF_WRITES:
            assert {"401", "403"} <= errors, f"{method} {path}: 401/403"
            assert {} not in operation.get("security", []), f"{method} {path} claims anonymous access"


def test_every_request_body_and_success_response_has_a_schema(schema):
    for method, path, operation in operations(schema):
        success = [code for code in operation["responses"] if code.startswith("2")]
        assert success, f"{method} {path}"
        if method == "post" and path != "/api/v1/registry/sync":
            (content,) = operation["requestBody"]["content"].values()  # classify reads any content type
            assert content["schema"], f"{method} {path}"


def test_predict_documents_single_and_batch_requests_and_the_error_codes(schema):
    operation = schema["paths"]["/api/v1/models/{name}/predict"]["post"]
    assert {"200", "400", "404", "409", "413", "429"} <= set(operation["responses"])
    request = schema["components"]["schemas"]["PredictRequest"]
    assert len(request["oneOf"]) == 2
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert any("instances" in example["value"] for example in examples.values())
    assert any(parameter["name"] == "version" for parameter in operation["parameters"])


def test_training_run_create_documents_202_409_and_503(schema):
    operation = schema["paths"]["/api/v1/training-runs"]["post"]
    assert {"202", "400", "401", "403", "409", "503"} <= set(operation["responses"])


def test_the_log_list_documents_its_filters_and_cursor(schema):
    names = {parameter["name"] for parameter in schema["paths"]["/api/v1/predictions"]["get"]["parameters"]}
    assert {"model", "version", "species", "created_after", "created_before", "cursor", "page_size"} <= names


@pytest.mark.parametrize(
    ("url", "content_type"),
    [
        ("/api/schema/", "application/vnd.oai.openapi"),
        ("/api/schema/?format=json", "application/vnd.oai.openapi+json"),
        ("/api/docs/", "text/html"),
        ("/api/redoc/", "text/html"),
    ],
)
def test_schema_and_docs_render(client, url, content_type):
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)
