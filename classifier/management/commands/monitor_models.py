"""manage.py monitor_models: check every active version once and store its monitoring report."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from classifier.services.monitoring import monitoring_check_all


class Command(BaseCommand):
    help = (
        "Check every model's active version against its reference (drift, live accuracy) over the last "
        "7 days of the log and store a MonitoringReport for each; beat runs the same check on a schedule."
    )

    def handle(self, *args, **options) -> None:
        reports = monitoring_check_all()
        for check in reports:
            drifted = ", ".join(check.drifted_features) or "none"
            accuracy = "no feedback"
            if check.accuracy is not None:
                interval = f"[{check.accuracy_low:.3f}, {check.accuracy_high:.3f}]"
                accuracy = f"{check.accuracy:.3f} {interval} on {check.labelled} labelled"
            self.stdout.write(
                f"{check.model.name} v{check.version.number}: {check.verdict} "
                f"({check.predictions} predictions; drifted features: {drifted}; accuracy {accuracy})"
            )
        self.stdout.write(f"{len(reports)} version(s) checked.")
