"""The Celery application; workers start with ``celery -A penguinsite worker -l info``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "penguinsite.settings")

app = Celery("penguinsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
