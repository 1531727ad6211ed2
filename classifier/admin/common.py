"""What the registry's admin pages share: metric tables, JSON, version links, the read-only rule."""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from core.paths import resolves_within

from .. import artifacts
from ..models import ModelVersion

METRICS = (
    ("train_accuracy", "train accuracy"),
    ("test_accuracy", "test accuracy"),
    ("test_precision", "test precision"),
    ("test_recall", "test recall"),
    ("test_f1", "test F1"),
    ("cv_accuracy_mean", "CV accuracy (mean)"),
    ("cv_accuracy_std", "CV accuracy (std)"),
)


def metric(metrics: dict | None, name: str) -> str:
    value = (metrics or {}).get(name)
    return "-" if value is None else f"{value:.4f}"


def metrics_table(metrics: dict | None) -> str:
    if not metrics:
        return "-"
    known = [(label, metric(metrics, name)) for name, label in METRICS if name in metrics]
    others = [(name, f"{value:.4f}" if isinstance(value, float) else value) for name, value in metrics.items()]
    others = [(name, value) for name, value in others if name not in dict(METRICS)]
    rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", known + others)
    return format_html("<table>{}</table>", rows)


def pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def version_link(version: ModelVersion | None, model_name: str | None = None) -> str:
    if version is None:
        return "-"
    url = reverse("admin:classifier_modelversion_change", args=[version.pk])
    return format_html('<a href="{}">{} v{}</a>', url, model_name or version.model.name, version.number)


def confusion_matrix_file(version: ModelVersion) -> Path | None:
    """The version's confusion-matrix PNG, if it exists inside the artifacts folder."""
    if not version.confusion_matrix_path:
        return None
    try:
        path = artifacts.absolute(version.confusion_matrix_path)
    except artifacts.ArtifactError:
        return None
    if not resolves_within(artifacts.root(), path) or path.suffix != ".png" or not path.is_file():
        return None
    return path.resolve()


class ReadOnlyAdminMixin:
    """Records that are an audit trail: shown, never added, edited or deleted by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class VersionColumnsMixin:
    """The columns a version shows wherever it is listed: its status and test metrics."""

    @admin.display(description="status")
    def status_label(self, version: ModelVersion) -> str:
        return version.status

    @admin.display(description="test accuracy")
    def test_accuracy(self, version: ModelVersion) -> str:
        return metric(version.metrics, "test_accuracy")

    @admin.display(description="test F1")
    def test_f1(self, version: ModelVersion) -> str:
        return metric(version.metrics, "test_f1")


class PageTitlesMixin:
    """Headings that say what the page is: "Models", "Model version knn v3", not "Select model to change"."""

    def changelist_view(self, request, extra_context=None):
        title = str(self.model._meta.verbose_name_plural).capitalize()
        return super().changelist_view(request, extra_context={"title": title, **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            kind, name = str(self.model._meta.verbose_name), str(obj)
            # "Model version knn v3"; "Prediction 12", not "Prediction prediction 12".
            title = name if name.lower().startswith(kind.lower()) else f"{kind} {name}"
            extra.setdefault("title", title[:1].upper() + title[1:])
            extra.setdefault("subtitle", None)
        return super().change_view(request, object_id, form_url, extra_context=extra)


def seconds(value: float | None) -> str:
    """A duration in seconds to 2 decimals: "0.41 s"."""
    return "-" if value is None else f"{value:.2f} s"


def file_size(value: int | None) -> str:
    """Bytes as a person reads them: "37.4 kB", "1.2 MB"."""
    if value is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"
