"""Admin for versions: the audit record of each, its confusion matrix, and activation (promote or roll back)."""

from __future__ import annotations

import importlib
import json
from collections import Counter
from functools import cache

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from core.api.permissions import CHANGE_MODEL

from ..models import ModelVersion
from ..services.registry import RegistryError, model_challenger_set, model_version_activate
from .common import (
    PageTitlesMixin,
    ReadOnlyAdminMixin,
    VersionColumnsMixin,
    confusion_matrix_file,
    file_size,
    metric,
    metrics_table,
    pretty_json,
    seconds,
)
from .compare import versions_compare
from .monitoring import version_monitoring_html


class ActivateForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=1000,
        help_text="Why this version should serve now; kept in the model's activation history.",
    )


@cache
def estimator_defaults(estimator_path: str) -> dict | None:
    """scikit-learn's default parameters of an estimator class named by its dotted path (sklearn only)."""
    module_name, _, class_name = estimator_path.rpartition(".")
    if not module_name.startswith("sklearn."):
        return None
    try:
        estimator_class = getattr(importlib.import_module(module_name), class_name)
        return json.loads(json.dumps(estimator_class().get_params(deep=False), default=repr))
    except Exception:  # an estimator that cannot be built without arguments: show every param
        return None


@admin.register(ModelVersion)
class ModelVersionAdmin(PageTitlesMixin, VersionColumnsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
    actions = ("activate_selected", "compare_selected", "challenge_selected")
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
        ("Evaluation against the champion when registered", {"fields": ("evaluation_table",)}),
        ("Metrics", {"fields": ("metrics_table", "classification_report_table")}),
        ("Confusion matrix (test set)", {"fields": ("confusion_matrix_picture",)}),
        ("Live: predictions and feedback", {"fields": ("live_monitoring",)}),
        ("Parameters", {"fields": ("params_table",)}),
        (
            "Artifact",
            {"fields": ("artifact_path", "sha256", "size", "runtime", "runtime_reason", "onnx_path")},
        ),
        (
            "Lineage",
            {
                "fields": (
                    "library_versions_json",
                    "dataset_json",
                    "n_train",
                    "n_test",
                    "training_time",
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
        return request.user.has_perm(CHANGE_MODEL)

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
            path("activate/", view(self.activate_view), name="classifier_modelversion_activate"),
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

    def activate_view(self, request: HttpRequest) -> HttpResponse:
        """Activate the versions ``?ids=`` names (promotion or rollback), once a reason is given and confirmed."""
        if not self.has_activate_permission(request):
            raise PermissionDenied
        ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.strip().isdigit()]
        versions = list(self.get_queryset(request).filter(pk__in=ids).order_by("model__name"))
        if not versions:
            raise Http404("No such version.")
        form = ActivateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            for version in versions:
                self._activate(request, version, reason=form.cleaned_data["reason"])
            if len(versions) == 1:
                return redirect("admin:classifier_modelversion_change", versions[0].pk)
            return redirect("admin:classifier_modelversion_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Activate " + ", ".join(str(version) for version in versions) + "?",
            "opts": self.opts,
            "form": form,
            "changes": [(version, version.model.active_version) for version in versions],
        }
        return TemplateResponse(request, "admin/classifier/modelversion/activate.html", context)

    @admin.action(description="Activate this version (promote or roll back)…", permissions=["activate"])
    def activate_selected(self, request, queryset) -> HttpResponse | None:
        versions = list(queryset.select_related("model"))
        twice = sorted({v.model.name for v in versions if Counter(x.model_id for x in versions)[v.model_id] > 1})
        if twice:
            self.message_user(
                request,
                f"Select one version per model; more than one was selected for {', '.join(twice)}.",
                messages.ERROR,
            )
            return None
        ids = ",".join(str(version.pk) for version in versions)
        return redirect(reverse("admin:classifier_modelversion_activate") + "?" + urlencode({"ids": ids}))

    def _activate(self, request: HttpRequest, version: ModelVersion, *, reason: str) -> None:
        previous = version.model.active_version
        try:
            outcome = model_version_activate(
                version=version,
                user=request.user,
                actor=f"admin {request.user.get_username()}",
                reason=reason,
            )
        except RegistryError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        if not outcome.changed:
            self.message_user(request, f"{version} is already the active version; nothing changed.", messages.INFO)
            return
        before = f" (instead of v{previous.number})" if previous and previous.pk != version.pk else ""
        self.message_user(
            request,
            f"{version.model.name} v{version.number} is now active{before}: POST /classify/{version.model.name} "
            "serves it within PENGUIN_REGISTRY_REFRESH_SECONDS (about a second).",
            messages.SUCCESS,
        )

    @admin.action(description="Compare selected versions side by side")
    def compare_selected(self, request, queryset):
        versions = list(queryset.select_related("model").order_by("model__name", "number"))
        if len(versions) < 2:
            self.message_user(request, "Select two or more versions to compare.", messages.WARNING)
            return None
        context = {**self.admin_site.each_context(request), **versions_compare(versions), "title": "Compare versions"}
        return TemplateResponse(request, "admin/classifier/modelversion/compare.html", context)

    @admin.action(description="Shadow its model's champion with this version (challenger)", permissions=["activate"])
    def challenge_selected(self, request, queryset) -> None:
        for version in queryset.select_related("model"):
            try:
                model_challenger_set(version=version, user=request.user)
            except RegistryError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(
                request,
                f"{version} now scores every prediction of {version.model.name} in shadow; its record is on the "
                f"model's page and at GET /api/v1/models/{version.model.name}/challenger.",
                messages.SUCCESS,
            )

    @admin.display(description="evaluation")
    def evaluation_table(self, version: ModelVersion) -> str:
        evaluation = version.evaluation or {}
        if not evaluation:
            return "No champion to compare with when it was registered (or registered before evaluations)."
        rows = [
            ("against", f"v{evaluation.get('against_version')}"),
            ("rows", f"{evaluation.get('rows')} ({evaluation.get('rows_basis', '')})"),
            (
                "right: this version / champion",
                f"{evaluation.get('candidate_correct')} / {evaluation.get('champion_correct')}",
            ),
            (
                "right only: this version / champion",
                f"{evaluation.get('candidate_only')} / {evaluation.get('champion_only')}",
            ),
            ("test, p-value", f"{evaluation.get('test')}, p = {evaluation.get('p_value', 1.0):.3g}"),
            ("policy", evaluation.get("policy", "-")),
            ("decision", evaluation.get("decision")),
            ("reason", evaluation.get("reason")),
        ]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description="size")
    def size(self, version: ModelVersion) -> str:
        return file_size(version.size_bytes)

    @admin.display(description="training time")
    def training_time(self, version: ModelVersion) -> str:
        return seconds(version.training_seconds)

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

    @admin.display(description="live")
    def live_monitoring(self, version: ModelVersion) -> str:
        return version_monitoring_html(version)

    @admin.display(description="params")
    def params_table(self, version: ModelVersion) -> str:
        """The parameters set differently from scikit-learn's defaults; every parameter behind a toggle."""
        params = version.params or {}
        defaults = estimator_defaults(version.estimator) if version.estimator else None
        if defaults is None:
            changed = params
        else:
            changed = {name: value for name, value in params.items() if defaults.get(name, object()) != value}
        rows = [(name, json.dumps(value, default=str)) for name, value in sorted(changed.items())]
        table = (
            format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))
            if rows
            else format_html("<p>{}</p>", "scikit-learn's defaults")
        )
        return format_html(
            "{}<details><summary>all {} parameters</summary>{}</details>", table, len(params), pretty_json(params)
        )

    @admin.display(description="library versions")
    def library_versions_json(self, version: ModelVersion) -> str:
        return pretty_json(version.library_versions)

    @admin.display(description="dataset")
    def dataset_json(self, version: ModelVersion) -> str:
        return pretty_json(version.dataset)
