"""The registry over HTTP: models, their versions, activation and sync with the files on disk."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier import selectors
from classifier.models import ModelActivation, ModelVersion
from classifier.services.registry import model_version_activate
from classifier.services.sync import registry_sync
from core.api.lean import LeanPostMixin
from core.api.mixins import ApiV1Mixin
from core.api.schema import error, errors

from ..filters import ModelFilter, ModelVersionFilter
from ..serializers import (
    ActivateRequestSerializer,
    ActivationSerializer,
    MLModelSerializer,
    SyncReportSerializer,
    VersionDetailSerializer,
    VersionSerializer,
)
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
class MLModelViewSet(LeanPostMixin, PredictActionMixin, ApiV1Mixin, viewsets.ReadOnlyModelViewSet):
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
        reason = body.validated_data.get("reason") or f"v{version.number} activated through the API"
        version = model_version_activate(
            version=version, user=request.user, actor=f"api by {request.user}", reason=reason
        )
        activation = (
            ModelActivation.objects.select_related("model", "version", "previous_version", "activated_by")
            .filter(model_id=version.model_id, version=version)
            .order_by("-id")
            .first()
        )
        return Response(ActivationSerializer(activation).data)


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
