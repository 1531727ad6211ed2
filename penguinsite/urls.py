"""URL configuration: the compatible endpoints, API v1, the Open Inference Protocol (/v2), schema/docs,
health, metrics, admin."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from classifier.api import compat
from classifier.api import urls as classifier_api
from classifier.health import healthz, readyz
from classifier.metrics import MetricsView
from training.api import urls as training_api

from .views import landing

# The admin names the service in its header and in every page's title.
admin.site.site_header = "Penguin Classifier"
admin.site.site_title = "Penguin Classifier admin"
admin.site.index_title = "Models, training runs and the prediction log"

# API v1 is one namespace ("api") composed of each app's routes.
api_v1 = ([*classifier_api.urlpatterns, *training_api.urlpatterns], "api")

urlpatterns = [
    path("", landing, name="landing"),
    path("models", compat.ModelsView.as_view(), name="compat-models"),
    path("classify/<str:name>", compat.ClassifyView.as_view(), name="compat-classify"),
    path("api/v1/", include(api_v1)),
    path("v2", include("classifier.api.v2.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="redoc"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    # APPEND_SLASH is off (the API answers without redirects); a person typing /admin is helped.
    path("admin", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
]

handler400 = "core.api.handlers.bad_request"
handler403 = "core.api.handlers.permission_denied"
handler404 = "core.api.handlers.not_found"
handler500 = "core.api.handlers.server_error"
