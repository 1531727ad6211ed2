"""Open Inference Protocol V2 (REST): health, metadata and inference under ``/v2``.

Thin doors into the same registry, serving and prediction-log services as every other
endpoint: the same validation rules (``classifier.encoding``), the same rate limits, and
every classified row is logged with its own endpoint value. Errors have the protocol's
shape, ``{"error": "..."}``.
"""

from __future__ import annotations

import re
import time

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier import selectors
from classifier.artifacts import ArtifactError
from classifier.estimators import ModelUnusable
from classifier.health import serving_unready_reason
from classifier.models import Prediction
from classifier.predict import prediction_make
from classifier.services.registry import NoProbabilities
from classifier.serving import load_entry
from classifier.serving_registry import live_registry
from core.api.handlers import exception_handler
from core.api.parsers import BoundedJSONParser
from core.encoding import EXAMPLES, FIELDS, SPECIES

from . import codec
from .serializers import (
    InferenceErrorSerializer,
    InferenceRequestSerializer,
    InferenceResponseSerializer,
    ModelMetadataSerializer,
    ModelReadySerializer,
    ServerLiveSerializer,
    ServerMetadataSerializer,
    ServerReadySerializer,
)

SERVER_NAME = "penguin-classifier"
MATRIX_INPUT = "penguins"
TAGS = ["open inference protocol"]


def v2_exception_handler(exc: Exception, context: dict) -> Response | None:
    """The shared error handling, answered in the protocol's ``{"error": "..."}`` shape."""
    if isinstance(exc, codec.ProtocolError):
        return Response({"error": exc.message}, status=exc.status)
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    message = str(data.get("detail", data)) if isinstance(data, dict) else str(data)
    if isinstance(data, dict) and data.get("errors"):
        message += " " + "; ".join(f"{key}: {' '.join(map(str, msgs))}" for key, msgs in data["errors"].items())
    response.data = {"error": message}
    return response


class InferenceBodyParser(BoundedJSONParser):
    """JSON, or JSON followed by binary tensor data (``Inference-Header-Content-Length``).

    tritonclient sends binary bodies as ``application/octet-stream`` and other clients may
    send no Content-Type at all, so any type is read; the size limit still applies.
    """

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        meta = request.META if request is not None else {}
        raw = self.read_bounded(stream, meta)
        return codec.split_body(raw, meta.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH"))


class V2Schema(AutoSchema):
    """Operation ids from the view's ``operation``; the ``/versions/{version}`` routes get ``_version``."""

    def get_operation_id(self) -> str:
        operation = self.view.operation
        return f"{operation}_version" if "{version}" in self.path else operation


class V2View(APIView):
    operation = ""
    schema = V2Schema()
    permission_classes = [AllowAny]
    parser_classes = [InferenceBodyParser]

    def get_exception_handler(self):
        return v2_exception_handler


def _version_number(name: str, version: str | None) -> int | None:
    if version is None:
        return None
    if re.fullmatch(r"[0-9]{1,10}", version) and 0 < int(version) < 2**31:
        return int(version)
    raise NotFound(f"Model {name[:80]!r} has no version {version[:20]!r}; GET /v2/models/{name[:80]} lists them.")


def _error(status: int, description: str, message: str) -> OpenApiResponse:
    return OpenApiResponse(
        InferenceErrorSerializer,
        description=description,
        examples=[
            OpenApiExample(f"{status}", value={"error": message}, response_only=True, status_codes=[str(status)])
        ],
    )


NOT_FOUND = _error(404, "No such model or version.", "Model 'nope' not found; GET /models lists the available models.")
THROTTLED = _error(
    429, "Rate limit exceeded; wait Retry-After seconds.", "Request was throttled. Expected available in 3 seconds."
)


class ServerMetadataView(V2View):
    operation = "v2_server_metadata"

    @extend_schema(
        summary="Server metadata: name, version and protocol extensions",
        tags=TAGS,
        responses={200: ServerMetadataSerializer, 429: THROTTLED},
    )
    def get(self, request):
        return Response(
            {
                "name": SERVER_NAME,
                "version": settings.SPECTACULAR_SETTINGS["VERSION"],
                "extensions": ["binary_tensor_data"],
            }
        )


class LiveView(V2View):
    operation = "v2_health_live"

    @extend_schema(
        summary="The server is alive",
        tags=TAGS,
        responses={200: ServerLiveSerializer, 429: THROTTLED},
    )
    def get(self, request):
        return Response({"live": True})


class ReadyView(V2View):
    operation = "v2_health_ready"

    @extend_schema(
        summary="The server can classify (database and model files reachable)",
        tags=TAGS,
        responses={
            200: ServerReadySerializer,
            503: OpenApiResponse(
                ServerReadySerializer,
                description="Not ready; `error` says why.",
                examples=[
                    OpenApiExample(
                        "Not ready",
                        value={"ready": False, "error": "database unreachable: OperationalError"},
                        response_only=True,
                        status_codes=["503"],
                    )
                ],
            ),
            429: THROTTLED,
        },
    )
    def get(self, request):
        reason = serving_unready_reason()
        if reason:
            return Response({"ready": False, "error": reason}, status=503)
        return Response({"ready": True})


class ModelMetadataView(V2View):
    operation = "v2_model_metadata"

    @extend_schema(
        summary="A model's metadata: versions, platform, input and output tensors",
        description=(
            f"The input is one `[N, {len(FIELDS)}]` FP32/FP64 tensor (fields in the order "
            f"{', '.join(FIELDS)}; island and sex as codes) or, instead, one tensor per field named like "
            "the field (shape `[N]` or `[N, 1]`; island and sex may be BYTES names)."
        ),
        tags=TAGS,
        responses={200: ModelMetadataSerializer, 404: NOT_FOUND, 429: THROTTLED},
    )
    def get(self, request, name: str, version: str | None = None):
        entry = live_registry.entry(name, version_number=_version_number(name, version))
        return Response(
            {
                "name": entry.model_name,
                "versions": [str(n) for n in selectors.model_version_numbers(model_name=entry.model_name)],
                "platform": "onnxruntime" if entry.runtime == "onnx" else "sklearn",
                "inputs": [
                    {
                        "name": MATRIX_INPUT,
                        "datatype": "FP64",
                        "shape": [-1, len(FIELDS)],
                        "parameters": {"fields": list(FIELDS)},
                    }
                ],
                "outputs": [
                    {"name": codec.OUTPUT_PREDICT, "datatype": "INT64", "shape": [-1]},
                    {
                        "name": codec.OUTPUT_PROBA,
                        "datatype": "FP64",
                        "shape": [-1, len(SPECIES)],
                        "parameters": {"species": [SPECIES[code] for code in sorted(SPECIES)]},
                    },
                    {"name": codec.OUTPUT_PREDICTION_ID, "datatype": "INT64", "shape": [-1]},
                ],
            }
        )


class ModelReadyView(V2View):
    operation = "v2_model_ready"

    @extend_schema(
        summary="The model (or this version of it) can classify",
        tags=TAGS,
        responses={
            200: ModelReadySerializer,
            404: NOT_FOUND,
            503: OpenApiResponse(
                ModelReadySerializer,
                description="The version cannot serve; `error` says why.",
                examples=[
                    OpenApiExample(
                        "Not ready",
                        value={"name": "knn", "ready": False, "error": "artifact file is missing"},
                        response_only=True,
                        status_codes=["503"],
                    )
                ],
            ),
            429: THROTTLED,
        },
    )
    def get(self, request, name: str, version: str | None = None):
        entry = live_registry.entry(name, version_number=_version_number(name, version))
        reason = entry.broken_reason
        if not reason:
            try:
                load_entry(entry)
            except (ArtifactError, ModelUnusable) as exc:
                reason = str(exc)
        if reason:
            return Response({"name": entry.model_name, "ready": False, "error": reason}, status=503)
        return Response({"name": entry.model_name, "ready": True})


ADELIE = [EXAMPLES["Adelie"][field] for field in FIELDS]
GENTOO = [EXAMPLES["Gentoo"][field] for field in FIELDS]


class InferView(V2View):
    operation = "v2_infer"

    @extend_schema(
        summary="Classify penguins given as tensors; every row is logged",
        description=(
            f"Inputs: one `[N, {len(FIELDS)}]` FP32/FP64 tensor ({', '.join(FIELDS)}; island and sex as codes), "
            "or one tensor per field named like the field (`[N]` or `[N, 1]`; island and sex may be BYTES "
            "names such as `Biscoe`, `female`). Data is flat or nested, row-major; the binary tensor data "
            "extension is accepted (`Inference-Header-Content-Length`). Outputs: `predict` (INT64 species "
            "ids, 1=Adelie, 2=Chinstrap, 3=Gentoo), `predict_proba` (`[N, 3]` FP64, species in id order) "
            "and, when asked for, `prediction_id` (the logged rows, for feedback). Without `outputs`, "
            "`predict` and `predict_proba` (when the model estimates probabilities). A bad value is a 400 "
            "naming its field and row; nothing is logged then."
        ),
        tags=TAGS,
        # Read whatever the Content-Type (binary tensor data comes as octet-stream); JSON is documented.
        request={"application/json": InferenceRequestSerializer},
        responses={
            200: InferenceResponseSerializer,
            400: _error(
                400,
                "Invalid request: the message names the input, or the field and row of a bad value.",
                "island (row 1): Out of range (4); it must be one of 1 (Torgersen), 2 (Biscoe), 3 (Dream), "
                "as the code or the name.",
            ),
            404: NOT_FOUND,
            409: _error(
                409,
                "The version cannot serve, or predict_proba was asked of a model without probabilities.",
                "svm v1 (sklearn.svm._classes.SVC) does not estimate probabilities.",
            ),
            413: _error(
                413,
                "Too many rows or too large a body.",
                "25000 rows in one request; at most 20000 are accepted (PENGUIN_MAX_BATCH). Split the batch.",
            ),
            429: THROTTLED,
            503: _error(
                503,
                "The prediction could not be logged; nothing was answered.",
                "The database is unavailable; nothing was recorded. Try again shortly.",
            ),
        },
        examples=[
            OpenApiExample(
                "One [N, 7] tensor",
                request_only=True,
                value={
                    "id": "batch-42",
                    "inputs": [{"name": MATRIX_INPUT, "shape": [2, 7], "datatype": "FP32", "data": [ADELIE, GENTOO]}],
                },
            ),
            OpenApiExample(
                "One tensor per field",
                request_only=True,
                value={
                    "inputs": [
                        {"name": "island", "shape": [1], "datatype": "BYTES", "data": ["Biscoe"]},
                        {"name": "bill_length_mm", "shape": [1], "datatype": "FP64", "data": [46.1]},
                        {"name": "bill_depth_mm", "shape": [1], "datatype": "FP64", "data": [13.2]},
                        {"name": "flipper_length_mm", "shape": [1], "datatype": "FP64", "data": [211]},
                        {"name": "body_mass_g", "shape": [1], "datatype": "FP64", "data": [4500]},
                        {"name": "sex", "shape": [1], "datatype": "BYTES", "data": ["female"]},
                        {"name": "year", "shape": [1], "datatype": "INT64", "data": [2007]},
                    ]
                },
            ),
            OpenApiExample(
                "Answer",
                response_only=True,
                value={
                    "model_name": "randomforest",
                    "model_version": "3",
                    "id": "batch-42",
                    "outputs": [
                        {"name": "predict", "datatype": "INT64", "shape": [2], "data": [1, 3]},
                        {
                            "name": "predict_proba",
                            "datatype": "FP64",
                            "shape": [2, 3],
                            "data": [0.99, 0.01, 0.0, 0.0, 0.0, 1.0],
                        },
                    ],
                },
            ),
        ],
    )
    def post(self, request, name: str, version: str | None = None):
        started = time.perf_counter()
        version_number = _version_number(name, version)
        live_registry.entry(name, version_number=version_number)  # 404 before reading the body
        body = request.data
        if not isinstance(body, codec.InferBody):  # no body at all
            raise codec.ProtocolError('Send an inference request: {"inputs": [{"name", "shape", "datatype", "data"}]}.')
        infer = codec.decode_request(body, max_rows=settings.PENGUIN_MAX_BATCH)
        wants_proba = codec.OUTPUT_PROBA in infer.outputs

        def classify(with_probabilities: bool):
            return prediction_make(
                model_name=name,
                matrix=infer.matrix,
                endpoint=Prediction.Endpoint.INFER,
                version_number=version_number,
                with_probabilities=with_probabilities,
                started=started,
            )

        try:
            outcome = classify(wants_proba)
        except NoProbabilities:
            if infer.explicit_outputs:
                raise
            outcome = classify(False)  # by default, predict alone for a model without probabilities
        content, header_length = codec.encode_response(
            request=infer,
            model_name=outcome.model_name,
            model_version=outcome.version_number,
            species_ids=outcome.species_ids,
            probabilities=outcome.probabilities,
            prediction_ids=outcome.prediction_ids,
        )
        if header_length is None:
            response = HttpResponse(content, content_type="application/json")
        else:
            response = HttpResponse(content, content_type="application/octet-stream")
            response[codec.HEADER_LENGTH] = str(header_length)
        response["X-Model-Version"] = str(outcome.version_number)
        return response
