"""URL configuration: the compatible endpoints, API v1, the Open Inference Protocol (/v2), schema/docs,
health, metrics, admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from classifier.api import compat
from classifier.health import healthz, readyz
from classifier.metrics import MetricsView

urlpatterns = [
    path("models", compat.ModelsView.as_view(), name="compat-models"),
    path("classify/<str:name>", compat.ClassifyView.as_view(), name="compat-classify"),
    path("api/v1/", include("classifier.api.urls")),
    path("v2", include("classifier.api.v2.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="redoc"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("admin/", admin.site.urls),
]

handler400 = "classifier.api.errors.bad_request"
handler403 = "classifier.api.errors.permission_denied"
handler404 = "classifier.api.errors.not_found"
handler500 = "classifier.api.errors.server_error"
