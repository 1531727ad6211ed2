"""Admin for training runs: follow a run from queued to its outcome (refreshes while active)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.urls import reverse
from django.utils.html import format_html

from classifier.admin import ReadOnlyAdminMixin

from .models import TrainingRun
from .selectors import training_runs_active_exist

REFRESH_SECONDS = 3

STATUS_COLOURS = {
    TrainingRun.Status.QUEUED: "#777",
    TrainingRun.Status.RUNNING: "#1f6fb2",
    TrainingRun.Status.SUCCEEDED: "#2e7d32",
    TrainingRun.Status.FAILED: "#c62828",
}


def run_started_message(run: TrainingRun) -> tuple[int, str]:
    """What the admin tells a user who just started ``run``: (message level, text)."""
    if run.status == TrainingRun.Status.SUCCEEDED and run.identical:
        return messages.INFO, (
            f"Trained {run.model_name} again in {run.duration_seconds:.1f}s (run {run.pk}): {run.activation_note}."
        )
    if run.status == TrainingRun.Status.SUCCEEDED:
        return messages.SUCCESS, (
            f"Trained {run.model_name} v{run.version.number} in {run.duration_seconds:.1f}s (run {run.pk}, in this "
            f"process: no broker is configured). {run.activation_note.capitalize()}."
        )
    if run.status == TrainingRun.Status.FAILED:
        return messages.ERROR, f"Training run {run.pk} for {run.model_name} failed: {run.error}"
    return messages.SUCCESS, (
        f"Queued training run {run.pk} for {run.model_name} ({run.algorithm}); a Celery worker will train it. "
        "Follow it under Training runs."
    )


def version_link(version) -> str:
    if version is None:
        return "-"
    url = reverse("admin:classifier_modelversion_change", args=[version.pk])
    return format_html('<a href="{}">{} v{}</a>', url, version.model.name, version.number)


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "model_name",
        "algorithm",
        "status_badge",
        "trigger",
        "triggered_by",
        "queued_at",
        "duration",
        "version_display",
        "activated",
        "short_error",
    )
    list_display_links = ("id", "model_name")
    list_filter = ("status", "trigger", "algorithm", "activated")
    search_fields = ("model_name",)
    list_select_related = ("version__model", "triggered_by")
    ordering = ("-id",)
    change_list_template = "admin/training/trainingrun/change_list.html"
    change_form_template = "admin/training/trainingrun/change_form.html"
    fieldsets = (
        (None, {"fields": ("model_name", "algorithm", "status_badge", "error", "version_display", "activation_note")}),
        ("Request", {"fields": ("params", "data_path", "data_sha256", "test_size", "seed", "activation")}),
        ("Who and when", {"fields": ("trigger", "triggered_by", "task_id", "attempts", "queued_at", "started_at")}),
        ("Outcome", {"fields": ("finished_at", "duration", "activated")}),
    )
    # Every field shown is read-only: the record is an audit trail.
    readonly_fields = flatten_fieldsets(fieldsets)

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        if training_runs_active_exist():
            extra_context["refresh_seconds"] = REFRESH_SECONDS
        extra_context["can_train"] = request.user.has_perm("training.add_trainingrun")
        return super().changelist_view(request, extra_context=extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        run = self.get_object(request, object_id)
        if run is not None and run.is_active:
            extra_context["refresh_seconds"] = REFRESH_SECONDS
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: TrainingRun) -> str:
        return format_html(
            '<strong style="color: {}">{}</strong>', STATUS_COLOURS.get(run.status, "inherit"), run.status
        )

    @admin.display(description="duration", ordering="duration_seconds")
    def duration(self, run: TrainingRun) -> str:
        return "-" if run.duration_seconds is None else f"{run.duration_seconds:.1f}s"

    @admin.display(description="version")
    def version_display(self, run: TrainingRun) -> str:
        return version_link(run.version)

    @admin.display(description="error")
    def short_error(self, run: TrainingRun) -> str:
        return run.error if len(run.error) <= 80 else run.error[:79] + "…"
