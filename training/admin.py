"""Admin for training runs, and training's part of the registry's pages.

Runs: follow one from queued to its outcome (the pages refresh while it is active). On the
models page training adds "Train a new model" and "Retrain selected", which call
``training_run_start``/``training_run_retrain``; a version's page links the run that made it.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from classifier.admin.common import PageTitlesMixin, ReadOnlyAdminMixin, seconds, version_link
from classifier.admin.models import MLModelAdmin
from classifier.admin.versions import ModelVersionAdmin
from classifier.models import MLModel, ModelVersion
from core.api.permissions import TRAIN

from .catalogue import CATALOGUE, ParamError
from .forms import TrainModelForm
from .models import TrainingRun
from .selectors import training_runs_active_exist
from .services.runs import TrainingConflict, TrainingQueueUnavailable
from .start import training_run_retrain, training_run_start

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


@admin.register(TrainingRun)
class TrainingRunAdmin(PageTitlesMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Short columns, so that duration, version, activated and error fit 1440 px unclipped.
    list_display = (
        "id",
        "model_name",
        "status_badge",
        "trigger",
        "queued",
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
        extra_context["can_train"] = request.user.has_perm(TRAIN)
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
        return seconds(run.duration_seconds)

    @admin.display(description="queued", ordering="queued_at")
    def queued(self, run: TrainingRun) -> str:
        if run.queued_at is None:
            return "-"
        when = timezone.localtime(run.queued_at)
        return format_html('<span title="{}">{}</span>', when.isoformat(" ", "seconds"), when.strftime("%m-%d %H:%M"))

    @admin.display(description="version")
    def version_display(self, run: TrainingRun) -> str:
        return version_link(run.version)

    @admin.display(description="error")
    def short_error(self, run: TrainingRun) -> str:
        """The first 60 characters, the whole error as the tooltip (and on the run's page)."""
        if not run.error:
            return "-"
        short = run.error if len(run.error) <= 60 else run.error[:59] + "…"
        return format_html('<span title="{}">{}</span>', run.error, short)


def _start_message(request: HttpRequest, run: TrainingRun) -> None:
    level, text = run_started_message(run)
    messages.add_message(request, level, text)


admin.site.unregister(MLModel)


@admin.register(MLModel)
class TrainableModelAdmin(MLModelAdmin):
    """The registry's models page, with training's actions and each model's runs."""

    actions = ("retrain_selected",)
    fields = (*MLModelAdmin.fields[:-2], "training_runs", *MLModelAdmin.fields[-2:])
    readonly_fields = (*MLModelAdmin.readonly_fields[:-2], "training_runs", *MLModelAdmin.readonly_fields[-2:])
    change_list_template = "admin/training/mlmodel/change_list.html"

    def has_train_permission(self, request) -> bool:
        return request.user.has_perm(TRAIN)

    def get_urls(self):
        urls = [
            path("train/", self.admin_site.admin_view(self.train_view), name="classifier_mlmodel_train"),
        ]
        return urls + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_train": self.has_train_permission(request)}
        return super().changelist_view(request, extra_context=extra_context)

    @admin.display(description="training runs")
    def training_runs(self, model: MLModel) -> str:
        url = reverse("admin:training_trainingrun_changelist") + "?" + urlencode({"model_name": model.name})
        count = TrainingRun.objects.filter(model_name=model.name).count()
        return format_html('<a href="{}">{} run(s)</a>', url, count)

    @admin.action(description="Retrain selected models (queue a training run each)", permissions=["train"])
    def retrain_selected(self, request, queryset) -> None:
        for model in queryset:
            try:
                run = training_run_retrain(model_name=model.name, trigger=TrainingRun.Trigger.ADMIN, user=request.user)
            except TrainingConflict as exc:
                self.message_user(request, f"{model.name} was not retrained: {exc}", messages.WARNING)
            except (ParamError, TrainingQueueUnavailable) as exc:
                self.message_user(request, f"{model.name} was not retrained: {exc}", messages.ERROR)
            else:
                _start_message(request, run)

    def train_view(self, request: HttpRequest) -> HttpResponse:
        """ "Train a new model": an algorithm, its params, and how to activate the result."""
        if not self.has_train_permission(request):
            raise PermissionDenied
        form = TrainModelForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                run = training_run_start(**form.run_arguments(), trigger=TrainingRun.Trigger.ADMIN, user=request.user)
            except TrainingConflict as exc:
                form.add_error("name" if form.cleaned_data.get("name") else "algorithm", str(exc))
            except TrainingQueueUnavailable as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return redirect("admin:training_trainingrun_changelist")
            else:
                _start_message(request, run)
                return redirect("admin:training_trainingrun_change", run.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Train a new model",
            "form": form,
            "opts": self.opts,
            "catalogue": [(name, spec.description, spec.defaults) for name, spec in CATALOGUE.items()],
        }
        return TemplateResponse(request, "admin/training/mlmodel/train.html", context)


def _with_training_run(fieldsets: tuple) -> tuple:
    """The version's fieldsets with "training run" after "created by"."""
    (name, options), *rest = fieldsets
    fields = list(options["fields"])
    fields.insert(fields.index("created_by") + 1, "training_run")
    return ((name, {**options, "fields": tuple(fields)}), *rest)


admin.site.unregister(ModelVersion)


@admin.register(ModelVersion)
class TrainedVersionAdmin(ModelVersionAdmin):
    """A version's page, linking the training run that produced it."""

    fieldsets = _with_training_run(ModelVersionAdmin.fieldsets)
    readonly_fields = flatten_fieldsets(fieldsets)

    @admin.display(description="training run")
    def training_run(self, version: ModelVersion) -> str:
        run = version.training_runs.order_by("-id").first()
        if run is None:
            return "-"
        url = reverse("admin:training_trainingrun_change", args=[run.pk])
        return format_html('<a href="{}">run {} ({}, {})</a>', url, run.pk, run.trigger, run.status)
