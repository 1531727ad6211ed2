"""Training runs: one row per request to train, followed from queued to its outcome."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ActivationMode(models.TextChoices):
    """Whether a newly trained version replaces the active one (the champion)."""

    NOT_WORSE = "not_worse", "unless significantly worse"
    BETTER = "better", "only if significantly better"
    FORCE = "force", "always"
    NEVER = "never", "never"


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
        DRIFT = "drift"  # dataset drift in two consecutive monitoring checks

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    model_name = models.CharField(max_length=64)
    algorithm = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    data_path = models.CharField(max_length=500)
    data_sha256 = models.CharField(max_length=64, blank=True)
    test_size = models.FloatField(default=0.2)
    seed = models.IntegerField(default=42, help_text="The estimator's random seed; it does not move the split.")
    split_seed = models.IntegerField(
        default=42, help_text="Decides, with the data, which rows are held out for testing."
    )
    activation = models.CharField(
        max_length=16,
        default=ActivationMode.NOT_WORSE,
        choices=ActivationMode.choices,
        help_text="Whether the new version replaces the champion, judged on the rows both were tested on.",
    )

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    task_id = models.CharField(max_length=64, blank=True)
    # The Celery node (celery@host) training the run: when a worker of that name starts, the
    # previous one is gone, and so is whatever it was training.
    worker = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    version = models.ForeignKey(
        "classifier.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    identical = models.BooleanField(
        default=False, help_text="The trained artifact matched an existing version byte for byte; none was registered."
    )
    activated = models.BooleanField(default=False)
    activation_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        # Training (and retraining) is its own right: the API, the admin and the ML engineers group use it.
        permissions = [("train", "Can train and retrain models")]
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
