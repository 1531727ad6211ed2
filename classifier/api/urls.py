"""API v1 routes (``/api/v1/``)."""


app_name = "api"

urlpatterns: list = []
