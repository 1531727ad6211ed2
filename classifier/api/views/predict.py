"""``POST /api/v1/models/{name}/predict``: score one penguin or a batch, every row logged."""

from __future__ import annotations

import re

import numpy as np
from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from classifier.models import Prediction
from classifier.predict import PredictionOutcome, prediction_make
from classifier.serving_registry import live_registry
from core.api.exceptions import PayloadTooLarge
from core.api.schema import error, errors
from core.encoding import EXAMPLES, SPECIES, SPECIES_NAMES, parse_one, parse_rows, probabilities_rounded

from ..serializers import PenguinSerializer, PredictBatchSerializer, PredictResponseSerializer

# The schema's request examples: the encoding's example penguins, island and sex given by
# code or by name to show that both are accepted.
ADELIE = {**EXAMPLES["Adelie"], "sex": "male"}
GENTOO = {**EXAMPLES["Gentoo"], "island": "Biscoe"}


class PredictActionMixin:
    # The ``predict`` action of the models viewset (no docstring: the schema would show it).

    @extend_schema(
        operation_id="models_predict",
        summary="Score one penguin or a batch, with probabilities; every row is logged",
        description=(
            'Send one penguin (the seven fields) or `{"instances": [...]}` with up to PENGUIN_MAX_BATCH '
            "penguins. Every row is validated first: one bad row rejects the whole batch with 400 naming "
            "`instances[i].field`, and nothing is logged. Each scored row is written to the prediction log "
            "(one multi-row insert) before the answer is sent. The model must estimate probabilities "
            "(predict_proba); otherwise 409."
        ),
        tags=["predict"],
        request=PolymorphicProxySerializer(
            component_name="Predict",
            serializers=[PenguinSerializer, PredictBatchSerializer],
            resource_type_field_name=None,
        ),
        parameters=[
            OpenApiParameter(
                "version",
                {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                description="Score with this version number instead of the active one.",
            ),
        ],
        responses={
            200: PredictResponseSerializer,
            **errors(400, 404, 503),
            409: error(
                409,
                "The version cannot serve, or its estimator has no predict_proba.",
                {
                    "detail": "svm v1 (sklearn.svm._classes.SVC) does not estimate probabilities.",
                    "code": "no_probabilities",
                },
            ),
            413: error(413),
        },
        examples=[
            OpenApiExample("One penguin", value=ADELIE, request_only=True),
            OpenApiExample("A batch", value={"instances": [ADELIE, GENTOO]}, request_only=True),
            OpenApiExample(
                "Answer",
                response_only=True,
                value={
                    "model": "randomforest",
                    "version": 3,
                    "count": 2,
                    "predictions": [
                        {
                            "prediction_id": 1041,
                            "species_id": 1,
                            "species_name": "Adelie",
                            "probabilities": {"Adelie": 0.99, "Chinstrap": 0.01, "Gentoo": 0.0},
                        },
                        {
                            "prediction_id": 1042,
                            "species_id": 3,
                            "species_name": "Gentoo",
                            "probabilities": {"Adelie": 0.0, "Chinstrap": 0.0, "Gentoo": 1.0},
                        },
                    ],
                },
            ),
        ],
    )
    @action(detail=True, methods=["post"], permission_classes=[AllowAny])
    def predict(self, request, name: str):
        version_number = _version_param(request)
        live_registry.entry(name, version_number=version_number)  # 404 before checking the rows
        matrix = _parse_body(request.data)
        outcome = prediction_make(
            model_name=name,
            matrix=matrix,
            endpoint=Prediction.Endpoint.PREDICT,
            version_number=version_number,
            with_probabilities=True,
            started=self.started,
            rows_answer=answer_rows,
        )
        response = Response(predict_answer(outcome))
        response["X-Model-Version"] = str(outcome.version_number)
        return response


def predict_answer(outcome: PredictionOutcome) -> dict:
    """The answer's body: every row's logged id, species and probabilities, in input order."""
    rows = outcome.answers
    if rows is None:
        rows = answer_rows(outcome.prediction_ids, outcome.species_ids, outcome.probabilities)
    return {"model": outcome.model_name, "version": outcome.version_number, "count": len(rows), "predictions": rows}


def answer_rows(prediction_ids: list[int], species_ids: np.ndarray, probabilities: np.ndarray) -> list[dict]:
    """Consecutive rows of the answer. ``prediction_make`` calls it block by block for a big
    batch, while PostgreSQL stores the rows."""
    # Plain lists and one comprehension: a 10,000-row answer is built in milliseconds.
    species = species_ids.tolist()
    rounded = probabilities_rounded(probabilities).tolist()
    return [
        {
            "prediction_id": prediction_id,
            "species_id": code,
            "species_name": SPECIES[code],
            "probabilities": dict(zip(SPECIES_NAMES, proba)),
        }
        for prediction_id, code, proba in zip(prediction_ids, species, rounded)
    ]


def _version_param(request) -> int | None:
    raw = request.query_params.get("version")
    if raw is None:
        return None
    if re.fullmatch(r"[0-9]{1,10}", raw) and 0 < int(raw) < 2**31:
        return int(raw)
    raise ValidationError({"version": [f"Expected a version number such as 1 or 2; got {raw[:20]!r}."]})


def _parse_body(data):
    """One penguin or ``{"instances": [...]}`` → the parsed (n, 7) matrix; raises 400/413."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ['Expected one penguin (a JSON object) or {"instances": [...]}.']})
    if "instances" not in data:
        return parse_one(data)
    rows = data["instances"]
    if not isinstance(rows, list):
        raise ValidationError({"instances": ["Expected a list of penguins (JSON objects)."]})
    if not rows:
        raise ValidationError({"instances": ["Send at least one penguin."]})
    limit = settings.PENGUIN_MAX_BATCH
    if len(rows) > limit:
        raise PayloadTooLarge(
            f"{len(rows)} rows in one request; at most {limit} are accepted (PENGUIN_MAX_BATCH). Split the batch.",
            code="batch_too_large",
        )
    return parse_rows(rows, prefix="instances")
