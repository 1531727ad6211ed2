"""The prediction log over HTTP: list, read, and record the true species (feedback)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from classifier import selectors
from classifier.services.predictions import prediction_feedback_record
from core.api.mixins import ApiV1Mixin
from core.api.pagination import NewestFirstCursorPagination
from core.api.permissions import CHANGE_PREDICTION, staff_with_permission
from core.api.schema import INVALID_CURSOR, NOT_FOUND, error, errors

from ..filters import PredictionFilter
from ..serializers import FeedbackRequestSerializer, PredictionSerializer


@extend_schema_view(
    list=extend_schema(
        summary="The prediction log, newest first, with filters and cursor pagination",
        description="Follow `next` to page; the cursor stays valid while new predictions arrive. Needs a login.",
        tags=["predictions"],
        responses={
            200: PredictionSerializer(many=True),
            **errors(401),
            400: error(400, "A bad filter, or a cursor not from `next`/`previous`.", INVALID_CURSOR),
        },
    ),
    retrieve=extend_schema(
        summary="One logged prediction",
        tags=["predictions"],
        responses={200: PredictionSerializer, **errors(401), 404: error(404, "No such prediction.", NOT_FOUND)},
    ),
)
class PredictionViewSet(ApiV1Mixin, viewsets.ReadOnlyModelViewSet):
    # ASCII digits only: int() would also read "١", "１" or "+1" as 1.
    lookup_value_regex = "[0-9]+"
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
    @action(detail=True, methods=["post"], permission_classes=[staff_with_permission(CHANGE_PREDICTION)])
    def feedback(self, request, pk: str):
        prediction = self.get_object()
        body = FeedbackRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        prediction = prediction_feedback_record(
            prediction=prediction, species_id=body.validated_data["species"], user=request.user
        )
        return Response(PredictionSerializer(prediction).data)
