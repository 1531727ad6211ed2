"""manage.py sync_models: reconcile the registry with the files in the artifacts folder."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from classifier.services.sync import registry_sync


class Command(BaseCommand):
    help = "Register new or changed models/<name>_model.pkl files, withdraw deleted ones, flag missing artifacts."

    def handle(self, *args, **options) -> None:
        report = registry_sync(actor="sync_models command")
        for label, items in (
            ("added", report.added),
            ("restored", report.restored),
            ("removed", report.removed),
            ("broken", report.broken),
            ("ignored (bad file name)", report.ignored),
        ):
            for item in items:
                self.stdout.write(f"{label}: {item}")
        self.stdout.write(
            f"{len(report.added)} added, {len(report.removed)} removed, {len(report.broken)} broken, "
            f"{report.unchanged} unchanged"
        )
