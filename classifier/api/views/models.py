"""The registry over HTTP: models, their versions, activation and sync with the files on disk."""

from __future__ import annotations

from django.http import Http404
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier import selectors
from classifier.models import MLModel, ModelVersion
from classifier.services.registry import (
    ChallengerInvalid,
    model_challenger_clear,
    model_challenger_set,
    model_version_activate,
)
from classifier.services.sync import registry_sync
from core.api.lean import LeanPostMixin
from core.api.mixins import ApiV1Mixin
from core.api.permissions import CHANGE_MODEL, ReadOpenWriteStaff, staff_with_permission
from core.api.schema import error, errors
from core.times import as_utc

from ..filters import ModelFilter, ModelVersionFilter
from ..serializers import (
    ActivateRequestSerializer,
    ActivationSerializer,
    ChallengerRequestSerializer,
    ChallengerSerializer,
    MLModelSerializer,
    ServingAtSerializer,
    SyncReportSerializer,
    VersionDetailSerializer,
    VersionSerializer,
)
from .monitoring import MonitoringActionMixin
from .predict import PredictActionMixin


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
class MLModelViewSet(
    LeanPostMixin, MonitoringActionMixin, PredictActionMixin, ApiV1Mixin, viewsets.ReadOnlyModelViewSet
):
    # Meta.ordering does not apply to an aggregated (annotated) queryset: order explicitly.
    queryset = selectors.model_list().select_related("active_version__model").order_by("name")
    serializer_class = MLModelSerializer
    filterset_class = ModelFilter
    pagination_class = None
    permission_classes = [AllowAny]
    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    lean_actions = frozenset({"predict"})  # open to anonymous callers; activate and the rest are not

    def get_object(self):
        try:
            return super().get_object()
        except Http404:
            raise _model_not_found(self.kwargs["name"]) from None

    @extend_schema(
        methods=["GET"],
        operation_id="models_challenger_read",
        # Reads are open (anonymous included); the token and the session are accepted too.
        auth=[{"tokenAuth": []}, {"cookieAuth": []}, {}],
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
    @action(detail=True, methods=["get", "put", "delete"], permission_classes=[ReadOpenWriteStaff])
    def challenger(self, request, name: str):
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
        parameters=[
            OpenApiParameter("at", OpenApiTypes.DATETIME, description="An ISO 8601 time, e.g. 2026-05-01T10:00:00Z.")
        ],
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
            try:
                moment = parse_datetime(request.query_params["at"].strip().replace(" ", "+"))
            except ValueError:  # well formed, but no such time (month 13)
                moment = None
            if moment is None:
                raise ValidationError({"at": ["Give an ISO 8601 time such as 2026-05-01T10:00:00Z."]})
            moment = as_utc(moment)
            version = selectors.version_serving_at(model=model, at=moment)
            data = {"model": model.name, "at": moment, "version": version.number if version else None}
            return Response(ServingAtSerializer(data).data)
        records = selectors.activation_list(model=model)[:500]
        return Response(ActivationSerializer(records, many=True).data)


def _model_not_found(name: str) -> NotFound:
    return NotFound(f"Model {name[:80]!r} not found; GET /api/v1/models lists the models.", code="model_not_found")


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
    # ASCII digits only: int() would also read "١", "１" or "+1" as 1.
    lookup_value_regex = "[0-9]+"

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
    @action(detail=True, methods=["post"], permission_classes=[staff_with_permission(CHANGE_MODEL)])
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
    permission_classes = [staff_with_permission(CHANGE_MODEL)]

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
