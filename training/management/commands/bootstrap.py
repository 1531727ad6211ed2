"""manage.py bootstrap: what `make run` needs before serving.

Trains the default models when the registry has none, and makes sure an admin login
exists. The password comes from DJANGO_SUPERUSER_PASSWORD, or is generated and printed
once (it is stored nowhere but in the password hash).
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from classifier.models import MLModel
from classifier.services.sync import registry_sync
from core.env import env_str
from training.catalogue import CATALOGUE
from training.models import TrainingRun
from training.start import training_run_start


class Command(BaseCommand):
    help = "Train the default models if the registry is empty and ensure an admin user exists."

    def add_arguments(self, parser):
        parser.add_argument("--no-train", action="store_true", help="skip training the default models")

    def handle(self, *args, **options) -> None:
        registry_sync(actor="bootstrap")
        if not options["no_train"]:
            self._train_defaults()
        self._ensure_admin()

    def _train_defaults(self) -> None:
        if MLModel.objects.filter(active_version__isnull=False).exists():
            self.stdout.write("registry has models; not training the defaults")
            return
        self.stdout.write(f"training the default models ({', '.join(CATALOGUE)}) ...")
        for algorithm in CATALOGUE:
            # Runs here even when a broker is configured: the service must not start empty.
            run = training_run_start(algorithm=algorithm, trigger=TrainingRun.Trigger.COMMAND, in_process=True)
            if run.status != TrainingRun.Status.SUCCEEDED:
                raise CommandError(f"training {algorithm} failed: {run.error}")
            self.stdout.write(
                f"  {algorithm}: v{run.version.number}, test accuracy {run.version.metrics['test_accuracy']:.3f}"
            )

    def _ensure_admin(self) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            return
        # env_str: like every setting, each may come from a <NAME>_FILE (Docker secrets).
        username = env_str("DJANGO_SUPERUSER_USERNAME") or "admin"
        password = env_str("DJANGO_SUPERUSER_PASSWORD")
        generated = not password
        password = password or secrets.token_urlsafe(12)
        users.objects.create_superuser(
            username=username, email=env_str("DJANGO_SUPERUSER_EMAIL") or "", password=password
        )
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created admin user {username!r} with password {password}\n"
                    "It is shown only this once; change it in the admin, or set DJANGO_SUPERUSER_PASSWORD next time."
                )
            )
        else:
            self.stdout.write(f"Created admin user {username!r} with the password from DJANGO_SUPERUSER_PASSWORD.")
