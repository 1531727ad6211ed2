"""WSGI entry point (gunicorn ``penguinsite.wsgi``)."""

import gc
import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "penguinsite.settings")

application = get_wsgi_application()

# Load the URLconf (every view, serializer and the serving code) now instead of on the first
# request, then take everything loaded so far out of the garbage collector's full passes: it
# lives as long as the worker, and scanning it again and again cost ~130 ms whenever a request
# (a 10,000-row batch in particular) happened to trigger a full collection.
import_module(settings.ROOT_URLCONF)
gc.freeze()
