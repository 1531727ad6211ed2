"""Training runs: one row per request to train, followed from queued to its outcome."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ActivationMode(models.TextChoices):
    """Whether a run's new version becomes active: by the promotion policy, never, or always."""

    POLICY = "policy", "by policy"
    NEVER = "never", "never"
    FORCE = "force", "always"


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        ADMIN = "admin"
        API = "api"
        COMMAND = "command"
        NOTEBOOK = "notebook"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    model_name = models.CharField(max_length=64)
    algorithm = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    data_path = models.CharField(max_length=500)
    data_sha256 = models.CharField(max_length=64, blank=True)
    test_size = models.FloatField(default=0.2)
    seed = models.IntegerField(default=42)
    activation = models.CharField(
        max_length=16,
        default=ActivationMode.POLICY,
        choices=ActivationMode.choices,
        help_text="Whether the new version becomes active: by the promotion policy, never, or always.",
    )

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    task_id = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    version = models.ForeignKey(
        "classifier.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    activated = models.BooleanField(default=False)
    activation_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One run per model at a time: a second queued/running run cannot exist.
            models.UniqueConstraint(
                fields=["model_name"],
                condition=Q(status__in=["queued", "running"]),
                name="trainingrun_one_active_per_model",
            ),
        ]
        indexes = [
            # Runs list filtered by status (admin auto-refresh, recovery sweep).
            models.Index(fields=["status", "-id"], name="trainingrun_status"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.model_name}, {self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES
