"""API v1 (``/api/v1/``): the registry, batch prediction, the prediction log, training runs.

Reads are viewsets with ``queryset``/``serializer_class``/``filterset_class``; operations
that are not CRUD (predict, activate, sync, feedback, starting a run) are ``@action``s or
their own views. Every one is a thin door into ``classifier.services`` or
``training.services``. Who may do what: model reads and predict are open (rate-limited);
the prediction log needs a login; every write, and the training runs, need a staff user.
"""

from __future__ import annotations

import re
import time

import numpy as np
from django.conf import settings
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier import selectors
from classifier.encoding import SPECIES, parse_one, parse_rows
from classifier.live import live_registry
from classifier.models import MLModel, ModelVersion, Prediction
from classifier.services import (
    ChallengerInvalid,
    model_challenger_clear,
    model_challenger_set,
    model_version_activate,
    prediction_feedback_record,
    prediction_make,
    registry_sync,
)
from training.models import TrainingRun
from training.services import TrainingConflict, TrainingQueueUnavailable, training_run_start

from .errors import Conflict, PayloadTooLarge, ServiceUnavailable
from .filters import ModelFilter, ModelVersionFilter, PredictionFilter, TrainingRunFilter
from .parsers import BoundedJSONParser
from .schema import error, errors
from .serializers import (
    ActivateRequestSerializer,
    ActivationSerializer,
    ChallengerRequestSerializer,
    ChallengerSerializer,
    FeedbackRequestSerializer,
    MLModelSerializer,
    PenguinSerializer,
    PredictBatchSerializer,
    PredictionSerializer,
    PredictResponseSerializer,
    ServingAtSerializer,
    SyncReportSerializer,
    TrainingRunCreateSerializer,
    TrainingRunSerializer,
    VersionDetailSerializer,
    VersionSerializer,
)

SPECIES_ORDER = [SPECIES[code] for code in sorted(SPECIES)]

ADELIE = {
    "island": 1,
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181,
    "body_mass_g": 3750,
    "sex": "male",
    "year": 2007,
}
GENTOO = {
    "island": "Biscoe",
    "bill_length_mm": 46.1,
    "bill_depth_mm": 13.2,
    "flipper_length_mm": 211,
    "body_mass_g": 4500,
    "sex": 0,
    "year": 2007,
}


class NewestFirstCursorPagination(CursorPagination):
    """Newest first by id; ``?cursor=`` pages stay stable while rows are being added."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request) -> int:
        """``?page_size=`` from 1 to max_page_size; anything else is a 400, not silently the default."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if re.fullmatch(r"[0-9]{1,4}", raw) and 1 <= int(raw) <= self.max_page_size:
            return int(raw)
        raise ValidationError(
            {self.page_size_query_param: [f"Expected a whole number from 1 to {self.max_page_size}; got {raw[:20]!r}."]}
        )

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_page_size})
        return parameters


class ApiV1Mixin:
    # Size-bounded JSON: a body over PENGUIN_MAX_BODY_BYTES is refused (413) unread.
    parser_classes = [BoundedJSONParser]

    def initial(self, request, *args, **kwargs) -> None:
        self.started = time.perf_counter()
        super().initial(request, *args, **kwargs)  # authentication, permissions, rate limits
        if request.method not in SAFE_METHODS:
            # Read the body before looking anything up: an oversized or broken body is
            # refused (413/400) the same way on every write, whatever it addresses.
            request.data  # noqa: B018


# --- models, versions, predict, sync ------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List the models, each with its active version and metrics",
        tags=["models"],
        responses={200: MLModelSerializer(many=True), **errors(400)},
    ),
    retrieve=extend_schema(
        summary="One model, with its active version and metrics",
        tags=["models"],
        responses={200: MLModelSerializer, **errors(404)},
    ),
)
class MLModelViewSet(ApiV1Mixin, viewsets.ReadOnlyModelViewSet):
    # Meta.ordering does not apply to an aggregated (annotated) queryset: order explicitly.
    queryset = selectors.model_list().select_related("active_version__model").order_by("name")
    serializer_class = MLModelSerializer
    filterset_class = ModelFilter
    pagination_class = None
    permission_classes = [AllowAny]
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def get_object(self):
        try:
            return super().get_object()
        except Http404:
            raise _model_not_found(self.kwargs["name"]) from None

    @extend_schema(
        methods=["GET"],
        operation_id="models_challenger_read",
        summary="The challenger shadowing the model, and its record against the champion",
        description=(
            "While a challenger is set, every prediction of the model (POST /classify, predict, batches) is "
            "also scored by it and its species stored on the same log row; clients always get the champion's "
            "answer. Its record since it was set: agreement, and on the rows with feedback each model's right "
            'answers, the exact McNemar test and a recommendation (fewer than 30 labelled rows: "not enough '
            'labels"). `challenger_version` is null when none is set. Promote it with POST .../versions/<n>/activate.'
        ),
        tags=["models"],
        responses={200: ChallengerSerializer, **errors(404)},
    )
    @extend_schema(
        methods=["PUT"],
        operation_id="models_challenger_set",
        summary="Shadow the model's predictions with another of its versions (staff)",
        tags=["models"],
        request=ChallengerRequestSerializer,
        responses={200: ChallengerSerializer, **errors(400, 403, 404)},
    )
    @extend_schema(
        methods=["DELETE"],
        operation_id="models_challenger_clear",
        summary="Stop shadowing the model's predictions (staff)",
        tags=["models"],
        request=None,
        responses={200: ChallengerSerializer, **errors(403, 404)},
    )
    @action(detail=True, methods=["get", "put", "delete"], permission_classes=[AllowAny])
    def challenger(self, request, name: str):
        if request.method != "GET" and not (request.user and request.user.is_staff):
            self.permission_denied(request, message="Setting a challenger needs a staff user.")
        model = self.get_object()
        if request.method == "PUT":
            body = ChallengerRequestSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            number = body.validated_data["version"]
            version = model.versions.filter(number=number).first()
            if version is None:
                raise ValidationError({"version": [f"{model.name} has no version {number}."]})
            try:
                model_challenger_set(version=version, user=request.user)
            except ChallengerInvalid as exc:
                raise ValidationError({"version": [str(exc)]}) from None
        elif request.method == "DELETE":
            model_challenger_clear(model=model, user=request.user)
        model = MLModel.objects.select_related("active_version", "challenger_version").get(pk=model.pk)
        stats = selectors.challenger_stats(model=model) or {
            "model": model.name,
            "champion_version": model.active_version.number if model.active_version else None,
            "challenger_version": None,
        }
        return Response(ChallengerSerializer(stats).data)

    @extend_schema(
        operation_id="models_activations",
        summary="The ledger: every activation newest first, or what was serving at a given time",
        description=(
            "Each activation with its version, the version it replaced, who, when, why and the evidence "
            "(the promotion gate's evaluation, or the challenger's record). With `?at=<ISO time>` the answer "
            'is `{"model", "at", "version"}`: the version serving at that moment, null before the first.'
        ),
        tags=["models"],
        parameters=[OpenApiParameter("at", str, description="An ISO 8601 time, e.g. 2026-05-01T10:00:00Z.")],
        responses={
            200: PolymorphicProxySerializer(
                component_name="Activations",
                serializers=[ActivationSerializer(many=True), ServingAtSerializer],
                resource_type_field_name=None,
                many=False,
            ),
            **errors(400, 404),
        },
    )
    @action(detail=True, methods=["get"], permission_classes=[AllowAny])
    def activations(self, request, name: str):
        model = self.get_object()
        if "at" in request.query_params:
            moment = parse_datetime(request.query_params["at"].strip().replace(" ", "+"))
            if moment is None:
                raise ValidationError({"at": ["Give an ISO 8601 time such as 2026-05-01T10:00:00Z."]})
            if timezone.is_naive(moment):
                moment = timezone.make_aware(moment, timezone.utc)
            version = selectors.version_serving_at(model=model, at=moment)
            data = {"model": model.name, "at": moment, "version": version.number if version else None}
            return Response(ServingAtSerializer(data).data)
        records = selectors.activation_list(model=model)[:500]
        return Response(ActivationSerializer(records, many=True).data)

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
        )
        # Plain lists and one comprehension: a 10,000-row answer is built in milliseconds.
        species = outcome.species_ids.tolist()
        probabilities = _rounded(outcome.probabilities).tolist()
        rows = [
            {
                "prediction_id": prediction_id,
                "species_id": code,
                "species_name": SPECIES[code],
                "probabilities": dict(zip(SPECIES_ORDER, proba)),
            }
            for prediction_id, code, proba in zip(outcome.prediction_ids, species, probabilities)
        ]
        response = Response(
            {"model": outcome.model_name, "version": outcome.version_number, "count": len(rows), "predictions": rows}
        )
        response["X-Model-Version"] = str(outcome.version_number)
        return response


def _rounded(probabilities: np.ndarray) -> np.ndarray:
    """Probabilities to 6 decimals, each row still summing to 1.

    Rounding alone can leave a row at 0.999999; the remainder goes to the row's largest
    entry (the predicted species), so the decimals a client reads add up to exactly 1.
    """
    rounded = probabilities.round(6)
    rows = np.arange(len(rounded))
    top = rounded.argmax(axis=1)
    rounded[rows, top] = (rounded[rows, top] + (1.0 - rounded.sum(axis=1))).round(6)
    return rounded


def _model_not_found(name: str) -> NotFound:
    return NotFound(f"Model {name[:80]!r} not found; GET /api/v1/models lists the models.", code="model_not_found")


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


NOT_FOUND = {"detail": "Not found.", "code": "not_found"}
INVALID_CURSOR = {"detail": "Invalid cursor", "code": "not_found"}
VERSION_NOT_FOUND = error(
    404,
    "No such model, or no such version of it.",
    {
        "detail": "Model 'knn' has no version 9; GET /api/v1/models/knn/versions lists them.",
        "code": "version_not_found",
    },
)
MODEL_NAME_PARAMETER = OpenApiParameter("model_name", str, OpenApiParameter.PATH, description="The model's name.")


@extend_schema_view(
    list=extend_schema(
        summary="The versions of a model, newest first",
        tags=["models"],
        parameters=[MODEL_NAME_PARAMETER],
        responses={200: VersionSerializer(many=True), **errors(400, 404)},
    ),
    retrieve=extend_schema(
        summary="One version: params, metrics, hash, lineage, live accuracy, activations",
        tags=["models"],
        parameters=[MODEL_NAME_PARAMETER],
        responses={200: VersionDetailSerializer, 404: VERSION_NOT_FOUND},
    ),
)
class ModelVersionViewSet(ApiV1Mixin, viewsets.ReadOnlyModelViewSet):
    queryset = ModelVersion.objects.select_related("model", "created_by").order_by("-number")
    serializer_class = VersionSerializer
    filterset_class = ModelVersionFilter
    pagination_class = None
    permission_classes = [AllowAny]
    lookup_field = "number"

    def get_queryset(self):
        return super().get_queryset().filter(model__name=self.kwargs["model_name"])

    def get_serializer_class(self):
        return VersionSerializer if self.action == "list" else VersionDetailSerializer

    def get_object(self):
        try:
            return super().get_object()
        except Http404:
            name, number = self.kwargs["model_name"], self.kwargs["number"]
            if not selectors.model_list().filter(name=name).exists():
                raise _model_not_found(name) from None
            raise NotFound(
                f"Model {name!r} has no version {number}; GET /api/v1/models/{name}/versions lists them.",
                code="version_not_found",
            ) from None

    def list(self, request, model_name: str):
        if not selectors.model_list().filter(name=model_name).exists():
            raise _model_not_found(model_name)
        versions = list(self.filter_queryset(self.get_queryset()))
        accuracy = selectors.versions_live_accuracy(version_ids=[version.pk for version in versions])
        context = {**self.get_serializer_context(), "live_accuracy": accuracy}
        return Response(VersionSerializer(versions, many=True, context=context).data)

    @extend_schema(
        summary="Make this version the one the model serves (promote or roll back)",
        description="Recorded in the model's activation history with the user and time. Staff only.",
        tags=["models"],
        parameters=[MODEL_NAME_PARAMETER],
        request=ActivateRequestSerializer,
        responses={
            200: ActivationSerializer,
            **errors(400, 401, 403),
            404: VERSION_NOT_FOUND,
            409: error(
                409,
                "The version is broken and cannot serve.",
                {"detail": "knn v2 cannot be activated: artifact file is missing.", "code": "model_unavailable"},
            ),
        },
        examples=[
            OpenApiExample("Roll back", value={"reason": "v3 misclassifies Chinstraps"}, request_only=True),
            OpenApiExample(
                "Activated",
                response_only=True,
                value={
                    "model": "knn",
                    "version": 2,
                    "previous_version": 3,
                    "activated_by": "alice",
                    "actor": "api by alice",
                    "reason": "v3 misclassifies Chinstraps",
                    "activated_at": "2025-05-01T12:00:00Z",
                },
            ),
        ],
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAdminUser])
    def activate(self, request, model_name: str, number: str):
        version = self.get_object()
        body = ActivateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reason = body.validated_data.get("reason") or ""
        if not reason and version.model.challenger_version_id != version.pk:
            reason = f"v{version.number} activated through the API"  # a challenger's reason is its record
        outcome = model_version_activate(
            version=version, user=request.user, actor=f"api by {request.user}", reason=reason
        )
        if not outcome.changed:
            return Response(
                {
                    "model": version.model.name,
                    "version": version.number,
                    "changed": False,
                    "detail": f"v{version.number} is already the active version; nothing changed.",
                }
            )
        return Response({**ActivationSerializer(outcome.activation).data, "changed": True})


class RegistrySyncView(ApiV1Mixin, APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="registry_sync",
        summary="Reconcile the registry with the model files on disk",
        description=(
            "Registers new or changed `models/<name>_model.pkl` files, withdraws deleted ones and marks "
            "versions whose artifact is missing as broken. Staff only."
        ),
        tags=["models"],
        request=None,
        responses={200: SyncReportSerializer, **errors(401, 403, 503)},
        examples=[
            OpenApiExample(
                "Report",
                response_only=True,
                value={
                    "added": ["legacy v1"],
                    "removed": [],
                    "broken": ["junk v1"],
                    "restored": [],
                    "unchanged": 5,
                    "ignored": ["notes.pkl"],
                },
            )
        ],
    )
    def post(self, request):
        report = registry_sync(actor=f"api by {request.user}")
        return Response(SyncReportSerializer(report).data)


# --- the prediction log -------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="The prediction log, newest first, with filters and cursor pagination",
        description="Follow `next` to page; the cursor stays valid while new predictions arrive. Needs a login.",
        tags=["predictions"],
        responses={
            200: PredictionSerializer(many=True),
            **errors(400, 401),
            404: error(404, "The cursor is not valid (take it from `next`/`previous`).", INVALID_CURSOR),
        },
    ),
    retrieve=extend_schema(
        summary="One logged prediction",
        tags=["predictions"],
        responses={200: PredictionSerializer, **errors(401), 404: error(404, "No such prediction.", NOT_FOUND)},
    ),
)
class PredictionViewSet(ApiV1Mixin, viewsets.ReadOnlyModelViewSet):
    queryset = selectors.prediction_list().select_related("feedback_by")
    serializer_class = PredictionSerializer
    filterset_class = PredictionFilter
    pagination_class = NewestFirstCursorPagination
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Record the true species of a prediction (ground truth)",
        description="Replaces earlier feedback. Feeds the version's live accuracy. Staff only.",
        tags=["predictions"],
        request=FeedbackRequestSerializer,
        responses={
            200: PredictionSerializer,
            **errors(400, 401, 403),
            404: error(404, "No such prediction.", NOT_FOUND),
        },
        examples=[
            OpenApiExample("By name", value={"species": "Gentoo"}, request_only=True),
            OpenApiExample("By id", value={"species": 3}, request_only=True),
        ],
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAdminUser])
    def feedback(self, request, pk: str):
        prediction = self.get_object()
        body = FeedbackRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        prediction = prediction_feedback_record(
            prediction=prediction, species_id=body.validated_data["species"], user=request.user
        )
        return Response(PredictionSerializer(prediction).data)


# --- training runs ------------------------------------------------------------------------------

RUN_EXAMPLE = {
    "id": 12,
    "status": "queued",
    "model_name": "knn",
    "algorithm": "knn",
    "params": {"n_neighbors": 7},
    "test_size": 0.2,
    "seed": 42,
    "split_seed": 42,
    "activation": "not_worse",
    "error": "",
    "queued_at": "2025-05-01T12:00:00Z",
    "started_at": None,
    "finished_at": None,
    "duration_seconds": None,
    "attempts": 0,
    "version": None,
    "identical": False,
    "activated": False,
    "activation_note": "",
    "trigger": "api",
    "triggered_by": "alice",
}


@extend_schema_view(
    list=extend_schema(
        summary="Training runs, newest first (staff only)",
        tags=["training"],
        responses={
            200: TrainingRunSerializer(many=True),
            **errors(400, 401, 403),
            404: error(404, "The cursor is not valid (take it from `next`/`previous`).", INVALID_CURSOR),
        },
    ),
    retrieve=extend_schema(
        summary="One training run: poll it until status is succeeded or failed (staff only)",
        tags=["training"],
        responses={200: TrainingRunSerializer, **errors(401, 403), 404: error(404, "No such run.", NOT_FOUND)},
    ),
)
class TrainingRunViewSet(
    ApiV1Mixin, mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = TrainingRun.objects.select_related("version", "triggered_by")
    serializer_class = TrainingRunSerializer
    filterset_class = TrainingRunFilter
    pagination_class = NewestFirstCursorPagination
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Train a model: queue a run and poll it",
        description=(
            "Validates the algorithm and params, records a queued run and hands it to a Celery worker "
            "(without a broker it trains before answering). Answers 202 with the run; poll "
            "GET /api/v1/training-runs/{id}. One run per model at a time (409). Staff only."
        ),
        tags=["training"],
        request=TrainingRunCreateSerializer,
        responses={
            202: OpenApiResponse(TrainingRunSerializer, description="The run, queued (or already finished)."),
            **errors(400, 401, 403),
            409: error(
                409,
                "A run for this model is already queued or running.",
                {
                    "detail": "A training run for 'knn' is already queued or running (run 11, running); "
                    "wait for it to finish.",
                    "code": "training_conflict",
                },
            ),
            503: error(
                503,
                "The broker could not take the run; it is recorded as failed.",
                {
                    "detail": "could not queue the run: the broker is unavailable (OperationalError). Try again later.",
                    "code": "queue_unavailable",
                },
            ),
        },
        examples=[
            OpenApiExample("k = 7", value={"algorithm": "knn", "params": {"n_neighbors": 7}}, request_only=True),
            OpenApiExample(
                "Named, never activated",
                value={
                    "algorithm": "randomforest",
                    "params": {"n_estimators": 300},
                    "name": "rf-300",
                    "activate": "never",
                },
                request_only=True,
            ),
            OpenApiExample("Queued", value=RUN_EXAMPLE, response_only=True, status_codes=["202"]),
        ],
    )
    def create(self, request):
        body = TrainingRunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            run = training_run_start(
                algorithm=data["algorithm"],
                params=data["params"],
                model_name=data.get("name") or None,
                test_size=data["test_size"],
                seed=data["seed"],
                split_seed=data["split_seed"],
                activation=data["activate"],
                trigger=TrainingRun.Trigger.API,
                user=request.user,
            )
        except TrainingConflict as exc:
            raise Conflict(str(exc), code="training_conflict") from None
        except TrainingQueueUnavailable as exc:
            raise ServiceUnavailable(str(exc), code="queue_unavailable") from None
        run = self.get_queryset().get(pk=run.pk)
        return Response(
            TrainingRunSerializer(run).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/training-runs/{run.pk}"},
        )
