"""Admin for models: each with its versions (newest first) and its active version's metrics."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count

from ..models import MLModel, ModelVersion
from .common import VersionColumnsMixin, metric, metrics_table, version_link


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
class MLModelAdmin(admin.ModelAdmin):
    list_display = ("name", "algorithm", "active", "test_accuracy", "test_f1", "version_count", "updated_at")
    search_fields = ("name",)
    list_filter = ("algorithm",)
    inlines = (ModelVersionInline,)
    fields = (
        "name",
        "algorithm",
        "description",
        "active",
        "active_metrics",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("name", "algorithm", "active", "active_metrics", "created_at", "updated_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("active_version").annotate(version_count=Count("versions"))

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
