"""Open Inference Protocol routes, included under ``v2`` (so the server metadata is ``GET /v2``).

Each model route also answers under ``/versions/<v>`` for one version of the model.
"""

from django.urls import path

from . import views

app_name = "v2"

urlpatterns = [
    path("", views.ServerMetadataView.as_view(), name="server-metadata"),
    path("/health/live", views.LiveView.as_view(), name="health-live"),
    path("/health/ready", views.ReadyView.as_view(), name="health-ready"),
    path("/models/<str:name>", views.ModelMetadataView.as_view(), name="model-metadata"),
    path("/models/<str:name>/ready", views.ModelReadyView.as_view(), name="model-ready"),
    path("/models/<str:name>/infer", views.InferView.as_view(), name="infer"),
    path("/models/<str:name>/versions/<str:version>", views.ModelMetadataView.as_view(), name="version-metadata"),
    path("/models/<str:name>/versions/<str:version>/ready", views.ModelReadyView.as_view(), name="version-ready"),
    path("/models/<str:name>/versions/<str:version>/infer", views.InferView.as_view(), name="version-infer"),
]
