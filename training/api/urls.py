"""Training runs' API v1 routes."""

from core.api.routers import OptionalSlashRouter

from .views import TrainingRunViewSet

router = OptionalSlashRouter()
router.register("training-runs", TrainingRunViewSet, basename="training-run")

urlpatterns = router.urls
