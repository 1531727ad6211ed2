"""API v1 routes (``/api/v1/``).

Every route answers with or without a trailing slash (``/api/v1/models/knn/predict`` and
``/api/v1/training-runs/`` both work; APPEND_SLASH is off, so there are no redirects that
would turn a POST into a GET). The schema documents the form without the slash.
"""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from . import views

app_name = "api"


class OptionalSlashRouter(SimpleRouter):
    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("models", views.MLModelViewSet, basename="model")
router.register(r"models/(?P<model_name>[^/]+)/versions", views.ModelVersionViewSet, basename="model-version")
router.register("predictions", views.PredictionViewSet, basename="prediction")
router.register("training-runs", views.TrainingRunViewSet, basename="training-run")

urlpatterns = [
    re_path(r"^registry/sync/?$", views.RegistrySyncView.as_view(), name="registry-sync"),
    *router.urls,
]
