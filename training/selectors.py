"""Training-run reads."""

from __future__ import annotations

from .models import TrainingRun


def training_runs_active_exist() -> bool:
    """Whether any run is queued or running (the admin refreshes itself while one is)."""
    return TrainingRun.objects.filter(status__in=TrainingRun.ACTIVE_STATUSES).exists()
