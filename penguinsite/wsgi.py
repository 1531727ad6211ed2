"""WSGI entry point (gunicorn ``penguinsite.wsgi``).

Two Django handlers share the URLconf: the full one, and one with ``PREDICT_MIDDLEWARE``
(settings) for POSTs to the predict doors that carry no cookie, which is how scripts and
services call them. Such a call has no session, CSRF token or messages to handle, and skipping
those middlewares saves a tenth of its CPU. Of those, a token-less POST /classify/<name> is
answered below Django's handler (penguinsite/classify_door.py), which hands anything but a
plain answer back to the predict handler. Anything else (the admin, a browser with its session
cookie, every GET) goes through the full stack.
"""

import gc
import os
import re
from importlib import import_module

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "penguinsite.settings")

from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

full_application = get_wsgi_application()


class PredictHandler(WSGIHandler):
    """Django's WSGI handler with the middleware list for cookie-less predict calls."""

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler reads settings.MIDDLEWARE; this runs once, at start-up, before any request.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.PREDICT_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


predict_application = PredictHandler()
PREDICT_PATHS = re.compile(r"/classify/[^/]+|/api/v1/models/[^/]+/predict/?|/v2/models/[^/]+(/versions/[^/]+)?/infer")


def application(environ, start_response):
    if (
        settings.PENGUIN_LEAN_PREDICT
        and environ.get("REQUEST_METHOD") == "POST"
        and "HTTP_COOKIE" not in environ
        and PREDICT_PATHS.fullmatch(environ.get("PATH_INFO", ""))
    ):
        if classify_door.door_open(environ):
            return classify_door.classify(environ, start_response, predict_application)
        return predict_application(environ, start_response)
    return full_application(environ, start_response)


# Load the URLconf (every view, serializer and the serving code) now instead of on the first
# request, then take everything loaded so far out of the garbage collector's full passes: it
# lives as long as the worker, and scanning it again and again cost ~130 ms whenever a request
# (a 10,000-row batch in particular) happened to trigger a full collection.
import_module(settings.ROOT_URLCONF)
from . import classify_door  # noqa: E402  (imports the views: after the URLconf, like a request would)

gc.freeze()
