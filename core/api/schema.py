"""OpenAPI documentation helpers: the error responses every operation shares, and two hooks.

Error bodies all have the shape of ``ErrorSerializer``; ``errors(400, 401, ...)`` gives an
operation its documented error responses with an example each.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from .serializers import ErrorSerializer

_ERRORS: dict[int, tuple[str, dict]] = {
    400: (
        "Invalid input: `errors` names each field (a batch row as `instances[i].field`).",
        {
            "detail": "Invalid input.",
            "code": "invalid",
            "errors": {
                "instances[3].island": ["Out of range (4); it must be one of 1 (Torgersen), 2 (Biscoe), 3 (Dream)"]
            },
        },
    ),
    401: (
        "No credentials: send `Authorization: Token <key>` (or log in for a session).",
        {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"},
    ),
    403: (
        "Authenticated, but not a staff user.",
        {"detail": "You do not have permission to perform this action.", "code": "permission_denied"},
    ),
    404: (
        "No such object.",
        {"detail": "Model 'nope' not found; GET /models lists the available models.", "code": "model_not_found"},
    ),
    409: (
        "Conflicts with the current state (e.g. a broken version, a model without probabilities).",
        {"detail": "svm v2 cannot serve: the artifact's sha256 does not match.", "code": "model_unavailable"},
    ),
    413: (
        "Too many rows or too large a body.",
        {
            "detail": "25000 rows in one request; at most 20000 are accepted (PENGUIN_MAX_BATCH). Split the batch.",
            "code": "batch_too_large",
        },
    ),
    429: (
        "Rate limit exceeded; the `Retry-After` header says how many seconds to wait.",
        {"detail": "Request was throttled. Expected available in 12 seconds.", "code": "throttled"},
    ),
    503: (
        "A dependency (database, broker) is unavailable; nothing was recorded. Retry later.",
        {
            "detail": "The database is unavailable; nothing was recorded. Try again shortly.",
            "code": "database_unavailable",
        },
    ),
}

# Examples shared by the list and detail views of every app.
NOT_FOUND = {"detail": "Not found.", "code": "not_found"}
INVALID_CURSOR = {
    "detail": "Invalid input.",
    "code": "invalid",
    "errors": {"cursor": ["Invalid cursor: take it from a page's next or previous link."]},
}


def error(status: int, description: str | None = None, example: dict | None = None) -> OpenApiResponse:
    """One documented error response (the shared body shape and an example)."""
    default_description, default_example = _ERRORS[status]
    return OpenApiResponse(
        ErrorSerializer,
        description=description or default_description,
        examples=[
            OpenApiExample(
                f"{status} error", value=example or default_example, response_only=True, status_codes=[str(status)]
            )
        ],
    )


def errors(*statuses: int, **overrides: str) -> dict[int, OpenApiResponse]:
    """``{status: error(status)}``; ``e404="..."`` overrides a description."""
    return {status: error(status, overrides.get(f"e{status}")) for status in statuses}


def strip_optional_trailing_slash(endpoints, **kwargs):
    """Preprocessing hook: document ``/api/v1/...`` routes without their optional slash.

    The API v1 router accepts both spellings (regex ``/?``); the schema shows the one the
    contract uses, ``/api/v1/models/{name}/predict``, rather than the slash-ended one
    ``simplify_regex`` would produce.
    """
    result = []
    for path, path_regex, method, callback in endpoints:
        if path_regex.endswith("/?$") and path.endswith("/"):
            path = path[:-1]
        result.append((path, path_regex, method, callback))
    return result


def complete_error_responses(result, generator, request, public):
    """Postprocessing hook: every operation may answer 429, and every error shows an example.

    All API views are rate-limited, so each gets the 429 response (with ``Retry-After``); an
    error response declared without an example (e.g. by the compatible views) gets the
    shared one for its status.
    """
    description, example = _ERRORS[429]
    throttled = {
        "description": description,
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds until the limit resets."}},
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Error"},
                "examples": {"Throttled": {"value": example}},
            }
        },
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            # An operation with its own 429 body (the /v2 protocol's shape) still gets the header.
            operation["responses"].setdefault("429", throttled).setdefault("headers", throttled["headers"])
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json")
                if content is not None and int(status) in _ERRORS and not content.get("examples"):
                    content["examples"] = {f"Error{status}": {"value": _ERRORS[int(status)][1]}}
    return result


def require_one_of_request_bodies(result, generator, request, public):
    """Postprocessing hook: a body that is one of several shapes, each with required fields, is required.

    drf-spectacular marks a request body required only when its serializer has required
    fields, which a ``oneOf`` (predict: one penguin or a batch) has not at its top level.
    """
    schemas = result.get("components", {}).get("schemas", {})
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if not body or body.get("required"):
                continue
            for content in body.get("content", {}).values():
                ref = content.get("schema", {}).get("$ref", "")
                branches = schemas.get(ref.rsplit("/", 1)[-1], {}).get("oneOf", [])
                resolved = [schemas.get(b.get("$ref", "").rsplit("/", 1)[-1], b) for b in branches]
                if resolved and all(branch.get("required") for branch in resolved):
                    body["required"] = True
    return result
