"""Admin for versions: the audit record of each, its confusion matrix, and activation (promote or roll back)."""

from __future__ import annotations

from collections import Counter

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from ..models import ModelVersion
from ..services.registry import RegistryError, model_version_activate
from .common import ReadOnlyAdminMixin, VersionColumnsMixin, confusion_matrix_file, metric, metrics_table, pretty_json


@admin.register(ModelVersion)
class ModelVersionAdmin(VersionColumnsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "status_label",
        "algorithm",
        "source",
        "test_accuracy",
        "test_f1",
        "cv_accuracy",
        "created_at",
        "triggered_by",
    )
    list_select_related = ("model",)
    list_filter = ("model", "source", "algorithm")
    search_fields = ("model__name", "=sha256")
    ordering = ("model__name", "-number")
    actions = ("activate_selected",)
    change_form_template = "admin/classifier/modelversion/change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "model",
                    "number",
                    "status_label",
                    "source",
                    "algorithm",
                    "estimator",
                    "created_at",
                    "triggered_by",
                    "created_by",
                    "activation_note",
                    "broken_reason",
                )
            },
        ),
        ("Metrics", {"fields": ("metrics_table", "classification_report_table")}),
        ("Confusion matrix (test set)", {"fields": ("confusion_matrix_picture",)}),
        ("Parameters", {"fields": ("params_json",)}),
        (
            "Artifact",
            {"fields": ("artifact_path", "sha256", "size_bytes", "runtime", "runtime_reason", "onnx_path")},
        ),
        (
            "Lineage",
            {
                "fields": (
                    "library_versions_json",
                    "dataset_json",
                    "n_train",
                    "n_test",
                    "training_seconds",
                    "feature_names",
                    "classes",
                )
            },
        ),
    )
    # Every field shown is read-only: the record is an audit trail.
    readonly_fields = flatten_fieldsets(fieldsets)

    # Versions are immutable (ReadOnlyAdminMixin): created by training or discovery, changed
    # only by activation.
    def has_activate_permission(self, request) -> bool:
        return request.user.has_perm("classifier.change_mlmodel")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("model")

    def get_urls(self):
        view = self.admin_site.admin_view
        urls = [
            path(
                "<int:object_id>/confusion-matrix.png",
                view(self.confusion_matrix_view),
                name="classifier_modelversion_confusion_matrix",
            ),
            path("<int:object_id>/activate/", view(self.activate_view), name="classifier_modelversion_activate"),
        ]
        return urls + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "can_activate": bool(
                version is not None and self.has_activate_permission(request) and version.status == "inactive"
            ),
        }
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def confusion_matrix_view(self, request: HttpRequest, object_id: int) -> FileResponse:
        """The version's confusion-matrix picture, for staff who may view versions."""
        version = self.get_object(request, str(object_id))
        if version is None or not self.has_view_permission(request, version):
            raise Http404("No such version.")
        picture = confusion_matrix_file(version)
        if picture is None:
            raise Http404("This version has no confusion-matrix picture.")
        response = FileResponse(picture.open("rb"), content_type="image/png")
        response["Cache-Control"] = "private, max-age=86400"  # versions never change
        return response

    def activate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """POST: make this version the one its model serves (promotion or rollback)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_activate_permission(request):
            raise PermissionDenied
        version = self.get_object(request, str(object_id))
        if version is None:
            raise Http404("No such version.")
        self._activate(request, version)
        return redirect("admin:classifier_modelversion_change", version.pk)

    @admin.action(description="Activate this version (promote or roll back)", permissions=["activate"])
    def activate_selected(self, request, queryset) -> None:
        versions = list(queryset.select_related("model"))
        twice = sorted({v.model.name for v in versions if Counter(x.model_id for x in versions)[v.model_id] > 1})
        if twice:
            self.message_user(
                request,
                f"Select one version per model; more than one was selected for {', '.join(twice)}.",
                messages.ERROR,
            )
            return
        for version in versions:
            self._activate(request, version)

    def _activate(self, request: HttpRequest, version: ModelVersion) -> None:
        previous = version.model.active_version
        try:
            model_version_activate(
                version=version,
                user=request.user,
                actor=f"admin {request.user.get_username()}",
                reason="activated from the admin",
            )
        except RegistryError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        before = f" (instead of v{previous.number})" if previous and previous.pk != version.pk else ""
        self.message_user(
            request,
            f"{version.model.name} v{version.number} is now active{before}: POST /classify/{version.model.name} "
            "serves it within PENGUIN_REGISTRY_REFRESH_SECONDS (about a second).",
            messages.SUCCESS,
        )

    @admin.display(description="CV accuracy")
    def cv_accuracy(self, version: ModelVersion) -> str:
        return metric(version.metrics, "cv_accuracy_mean")

    @admin.display(description="metrics")
    def metrics_table(self, version: ModelVersion) -> str:
        return metrics_table(version.metrics)

    @admin.display(description="classification report")
    def classification_report_table(self, version: ModelVersion) -> str:
        report = version.classification_report or {}
        rows = []
        for label, values in report.items():
            if isinstance(values, dict):
                rows.append(
                    (
                        label,
                        metric(values, "precision"),
                        metric(values, "recall"),
                        metric(values, "f1-score"),
                        int(values.get("support", 0)),
                    )
                )
            else:
                rows.append((label, "", "", f"{values:.4f}", ""))
        if not rows:
            return "-"
        return format_html(
            "<table><tr><th></th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{}</table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description="picture")
    def confusion_matrix_picture(self, version: ModelVersion) -> str:
        table = version.confusion_matrix or {}
        labels, matrix = table.get("labels") or [], table.get("matrix") or []
        text = ""
        if labels and matrix:
            header = format_html_join("", "<th>{}</th>", ((label,) for label in labels))
            body = format_html_join(
                "",
                "<tr><th>{}</th>{}</tr>",
                (
                    (label, format_html_join("", "<td>{}</td>", ((value,) for value in row)))
                    for label, row in zip(labels, matrix)
                ),
            )
            text = format_html("<table><tr><th>true \\ predicted</th>{}</tr>{}</table>", header, body)
        if confusion_matrix_file(version) is None:
            return text or "-"
        url = reverse("admin:classifier_modelversion_confusion_matrix", args=[version.pk])
        return format_html('<img src="{}" alt="confusion matrix of {}" width="420"><br>{}', url, version, text)

    @admin.display(description="params")
    def params_json(self, version: ModelVersion) -> str:
        return pretty_json(version.params)

    @admin.display(description="library versions")
    def library_versions_json(self, version: ModelVersion) -> str:
        return pretty_json(version.library_versions)

    @admin.display(description="dataset")
    def dataset_json(self, version: ModelVersion) -> str:
        return pretty_json(version.dataset)
