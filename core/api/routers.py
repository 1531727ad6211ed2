"""The router every app's API v1 routes use.

Every route answers with or without a trailing slash (``/api/v1/models/knn/predict`` and
``/api/v1/training-runs/`` both work; APPEND_SLASH is off, so there are no redirects that
would turn a POST into a GET). The schema documents the form without the slash.
"""

from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
