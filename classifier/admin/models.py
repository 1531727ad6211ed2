"""Admin for models: each with its versions (newest first) and its active version's metrics."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from ..models import MLModel, ModelVersion
from ..selectors import activation_list, challenger_stats
from ..services.registry import model_challenger_clear
from .common import VersionColumnsMixin, metric, metrics_table, version_link
from .monitoring import MonitoringAdminMixin


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
class MLModelAdmin(MonitoringAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "algorithm",
        "active",
        "drift_badge",
        "test_accuracy",
        "test_f1",
        "version_count",
        "updated_at",
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
        "ledger",
        "created_at",
        "updated_at",
    )
    readonly_fields = (
        "name",
        "algorithm",
        "active",
        "active_metrics",
        "monitoring",
        "challenger",
        "challenger_record",
        "ledger",
        "created_at",
        "updated_at",
    )
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

    @admin.display(description="ledger: what was live (newest first)")
    def ledger(self, model: MLModel) -> str:
        rows = [
            (
                timezone.localtime(record.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                f"v{record.version.number}" if record.version else "none",
                f"v{record.previous_version.number}" if record.previous_version else "-",
                record.activated_by.get_username() if record.activated_by else record.actor,
                record.reason,
            )
            for record in activation_list(model=model)[:50]
        ]
        if not rows:
            return "-"
        header = "<tr><th>when</th><th>version</th><th>replaced</th><th>who</th><th>why</th></tr>"
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html("<table>{}{}</table>", mark_safe(header), body)

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
