"""URL configuration: the compatible endpoints, API v1, schema/docs, health, metrics, admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from classifier.api import compat
from classifier.api import urls as classifier_api
from classifier.health import healthz, readyz
from classifier.metrics import MetricsView
from training.api import urls as training_api

# API v1 is one namespace ("api") composed of each app's routes.
api_v1 = ([*classifier_api.urlpatterns, *training_api.urlpatterns], "api")

urlpatterns = [
    path("models", compat.ModelsView.as_view(), name="compat-models"),
    path("classify/<str:name>", compat.ClassifyView.as_view(), name="compat-classify"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("admin/", admin.site.urls),
]

handler400 = "core.api.handlers.bad_request"
handler403 = "core.api.handlers.permission_denied"
handler404 = "core.api.handlers.not_found"
handler500 = "core.api.handlers.server_error"
