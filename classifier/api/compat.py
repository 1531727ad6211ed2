"""The earlier service's endpoints, with its exact response shapes."""

from __future__ import annotations

import time

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier.models import Prediction
from classifier.predict import prediction_make
from classifier.serving_registry import live_registry
from core.api.lean import LeanPostMixin
from core.api.parsers import AnyContentTypeJSONParser
from core.api.serializers import ErrorSerializer
from core.encoding import EXAMPLES, SPECIES, parse_one

from .serializers import CompatClassifySerializer, CompatModelsSerializer, PenguinSerializer

COMPAT_METRICS = ("train_accuracy", "test_accuracy", "test_precision", "test_recall", "test_f1")

ADELIE_EXAMPLE = EXAMPLES["Adelie"]


class ModelsView(APIView):
    """GET /models: every model with an active version, sorted by name."""

    @extend_schema(
        operation_id="compat_models_list",
        tags=["compatible"],
        summary="List the models that can be classified with",
        responses={200: CompatModelsSerializer, 503: ErrorSerializer},
    )
    def get(self, request):
        models = []
        for name, entry in sorted(live_registry.entries().items()):
            item = {
                "name": name,
                "endpoint": f"POST /classify/{name}",
                "metrics": {key: entry.metrics.get(key) for key in COMPAT_METRICS},
                "status": "broken" if entry.broken_reason else "ready",
                "version": entry.number,
            }
            if entry.broken_reason:
                item["error"] = entry.broken_reason
            models.append(item)
        return Response({"available_models": models})


class ClassifyView(LeanPostMixin, APIView):
    """POST /classify/<name>: one penguin in, its species out; the answer is logged first."""

    parser_classes = [AnyContentTypeJSONParser]

    @extend_schema(
        operation_id="compat_classify",
        tags=["compatible"],
        summary="Classify one penguin with a model's active version",
        # Bodies are read as JSON whatever their Content-Type (earlier clients omit it), but
        # JSON is what is documented: a YAML or XML body is not a penguin.
        request={"application/json": PenguinSerializer},
        responses={
            200: CompatClassifySerializer,
            400: OpenApiResponse(ErrorSerializer, description="A field is missing, of the wrong type or out of range."),
            404: OpenApiResponse(ErrorSerializer, description="No model of that name; see GET /models."),
            409: OpenApiResponse(ErrorSerializer, description="The model exists but its file cannot serve."),
            413: OpenApiResponse(ErrorSerializer, description="Body over the size limit."),
            503: OpenApiResponse(ErrorSerializer, description="The prediction could not be logged."),
        },
        examples=[
            OpenApiExample("An Adelie", value=ADELIE_EXAMPLE, request_only=True),
            OpenApiExample(
                "Answer", value={"model": "randomforest", "species_id": 1, "species_name": "Adelie"}, response_only=True
            ),
        ],
    )
    def post(self, request, name: str):
        body, headers = classify_answer(name=name, data=request.data, started=time.perf_counter())
        response = Response(body)
        for header, value in headers.items():
            response[header] = value
        return response


def classify_answer(*, name: str, data: object, started: float) -> tuple[dict, dict[str, str]]:
    """POST /classify/<name>'s answer to a parsed body, logged before it returns: (body, headers).

    Raises what the view turns into errors: ModelNotFound (checked before the body, so an
    unknown model is a 404 whatever was sent), InputError, ModelBroken, DatabaseError.
    """
    live_registry.entry(name)
    matrix = parse_one(data)
    outcome = prediction_make(model_name=name, matrix=matrix, endpoint=Prediction.Endpoint.CLASSIFY, started=started)
    species_id = int(outcome.species_ids[0])
    body = {"model": name, "species_id": species_id, "species_name": SPECIES[species_id]}
    return body, {"X-Model-Version": str(outcome.version_number), "X-Prediction-Id": str(outcome.prediction_ids[0])}
