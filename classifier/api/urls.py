"""The registry's API v1 routes: models, versions, predict, the prediction log, sync."""

from django.urls import re_path

from core.api.routers import OptionalSlashRouter

from .views.models import MLModelViewSet, ModelVersionViewSet, RegistrySyncView
from .views.predictions import PredictionViewSet

router = OptionalSlashRouter()
router.register("models", MLModelViewSet, basename="model")
router.register(r"models/(?P<model_name>[^/]+)/versions", ModelVersionViewSet, basename="model-version")
router.register("predictions", PredictionViewSet, basename="prediction")

urlpatterns = [
    re_path(r"^registry/sync/?$", RegistrySyncView.as_view(), name="registry-sync"),
    *router.urls,
]
