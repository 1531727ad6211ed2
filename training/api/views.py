"""Training runs over HTTP: start one (202) and poll it. Staff only.

Every view is a thin door into ``training.start`` and ``training.services``.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response

from core.api.exceptions import Conflict, ServiceUnavailable
from core.api.mixins import ApiV1Mixin
from core.api.pagination import NewestFirstCursorPagination
from core.api.permissions import TRAIN, staff_with_permission
from core.api.schema import INVALID_CURSOR, NOT_FOUND, error, errors
from training.models import TrainingRun
from training.services.runs import TrainingConflict, TrainingQueueUnavailable
from training.start import training_run_start

from .filters import TrainingRunFilter
from .serializers import TrainingRunCreateSerializer, TrainingRunSerializer

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
            **errors(401, 403),
            400: error(400, "A bad filter, or a cursor not from `next`/`previous`.", INVALID_CURSOR),
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
    # ASCII digits only: int() would also read "١", "１" or "+1" as 1.
    lookup_value_regex = "[0-9]+"
    queryset = TrainingRun.objects.select_related("version", "triggered_by")
    serializer_class = TrainingRunSerializer
    filterset_class = TrainingRunFilter
    pagination_class = NewestFirstCursorPagination
    permission_classes = [IsAdminUser]

    def get_permissions(self):
        # Reading runs needs staff; starting one needs the train permission (as in the admin).
        if self.action == "create":
            return [staff_with_permission(TRAIN)()]
        return super().get_permissions()

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
