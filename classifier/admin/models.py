"""Admin for models: each with its versions (newest first) and its active version's metrics."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from ..models import MLModel, ModelActivation, ModelVersion
from ..selectors import challenger_stats
from ..services.registry import model_challenger_clear
from .common import PageTitlesMixin, VersionColumnsMixin, metric, metrics_table, version_link
from .monitoring import MonitoringAdminMixin

HISTORY_ROWS = 50


class ModelVersionInline(VersionColumnsMixin, admin.TabularInline):
    model = ModelVersion
    fk_name = "model"
    fields = (
        "version",
        "status_label",
        "source",
        "algorithm",
        "test_accuracy",
        "test_f1",
        "created_at",
        "triggered_by",
        "activation_note",
    )
    readonly_fields = fields
    ordering = ("-number",)
    extra = 0
    can_delete = False
    verbose_name_plural = "versions (newest first)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("model")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="version")
    def version(self, version: ModelVersion) -> str:
        return version_link(version)


@admin.register(MLModel)
class MLModelAdmin(PageTitlesMixin, MonitoringAdminMixin, admin.ModelAdmin):
    # The algorithm is a filter, and the times are on the model's page: the list fits 1440 px.
    list_display = (
        "name",
        "active",
        "drift_badge",
        "test_accuracy",
        "test_f1",
        "version_count",
    )
    search_fields = ("name",)
    list_filter = ("algorithm",)
    inlines = (ModelVersionInline,)
    fields = (
        "name",
        "algorithm",
        "description",
        "active",
        "active_metrics",
        "monitoring",
        "challenger",
        "challenger_record",
        "activation_history",
        "created_at",
        "updated_at",
    )
    # Everything on the page but the description is computed or owned by the registry.
    readonly_fields = tuple(field for field in fields if field != "description")
    actions = ("stop_challenger",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("active_version", "challenger_version")
            .annotate(version_count=Count("versions"))
        )

    def has_challenger_permission(self, request) -> bool:
        return request.user.has_perm("classifier.change_mlmodel")

    @admin.action(description="Stop the challenger's shadow traffic", permissions=["challenger"])
    def stop_challenger(self, request, queryset) -> None:
        stopped = [model.name for model in queryset if model_challenger_clear(model=model, user=request.user)]
        self.message_user(request, f"Stopped: {', '.join(stopped)}." if stopped else "No challenger was set.")

    @admin.display(description="challenger (shadow)")
    def challenger(self, model: MLModel) -> str:
        if model.challenger_version is None:
            return "none: select a version and use “Shadow its model's champion with this version”"
        return format_html("{} since {}", version_link(model.challenger_version, model.name), model.challenger_since)

    @admin.display(description="challenger's record")
    def challenger_record(self, model: MLModel) -> str:
        stats = challenger_stats(model=model)
        if stats is None:
            return "-"
        rows = [
            ("shadow predictions", stats["shadow_predictions"]),
            ("agreement", "-" if stats["agreement"] is None else f"{stats['agreement']:.3f}"),
            ("labelled", stats["labelled"]),
            ("right: champion / challenger", f"{stats['champion_correct']} / {stats['challenger_correct']}"),
            ("right only: champion / challenger", f"{stats['champion_only']} / {stats['challenger_only']}"),
            ("McNemar exact p", f"{stats['p_value']:.3g}"),
            ("recommendation", stats["recommendation"]),
        ]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    # Models come into being by training (or a dropped-in file), never by an empty form; and
    # deleting one would orphan its artifact files and its prediction log.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="active version")
    def active(self, model: MLModel) -> str:
        return version_link(model.active_version, model.name)

    @admin.display(description="test accuracy")
    def test_accuracy(self, model: MLModel) -> str:
        return metric(model.active_version.metrics if model.active_version else None, "test_accuracy")

    @admin.display(description="test F1")
    def test_f1(self, model: MLModel) -> str:
        return metric(model.active_version.metrics if model.active_version else None, "test_f1")

    @admin.display(description="versions", ordering="version_count")
    def version_count(self, model: MLModel) -> int:
        return model.version_count

    @admin.display(description="metrics of the active version")
    def active_metrics(self, model: MLModel) -> str:
        return metrics_table(model.active_version.metrics if model.active_version else None)

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, model: MLModel) -> str:
        return timezone.localtime(model.updated_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="activation history: what was live (newest first)")
    def activation_history(self, model: MLModel) -> str:
        """Which version served from when, who switched it and why (newest first)."""
        activations = (
            ModelActivation.objects.filter(model=model)
            .select_related("version", "previous_version", "activated_by")
            .order_by("-id")[:HISTORY_ROWS]
        )
        rows = [
            (
                timezone.localtime(activation.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                version_link(activation.version, model.name),
                f"v{activation.previous_version.number}" if activation.previous_version else "-",
                activation.activated_by.get_username() if activation.activated_by else (activation.actor or "-"),
                activation.reason or "-",
            )
            for activation in activations
        ]
        if not rows:
            return "-"
        return format_html(
            "<table><tr><th>when</th><th>version</th><th>instead of</th><th>who</th><th>why</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )
