"""Admin for the registry and the prediction log.

Every change goes through the services: "Retrain selected" and "Train a new model" call
``training_run_start``; "Activate this version" calls ``model_version_activate``. Versions
and predictions are read-only; the prediction list stays fast at millions of rows.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from training.catalogue import CATALOGUE, ParamError
from training.forms import TrainModelForm
from training.models import TrainingRun
from training.services import TrainingConflict, TrainingQueueUnavailable, training_run_retrain, training_run_start

from . import artifacts
from .encoding import SPECIES
from .models import MLModel, ModelVersion, Prediction
from .paginators import EstimatedCountPaginator
from .services import RegistryError, model_version_activate

METRICS = (
    ("train_accuracy", "train accuracy"),
    ("test_accuracy", "test accuracy"),
    ("test_precision", "test precision"),
    ("test_recall", "test recall"),
    ("test_f1", "test F1"),
    ("cv_accuracy_mean", "CV accuracy (mean)"),
    ("cv_accuracy_std", "CV accuracy (std)"),
)


def _metric(metrics: dict | None, name: str) -> str:
    value = (metrics or {}).get(name)
    return "-" if value is None else f"{value:.4f}"


def _metrics_table(metrics: dict | None) -> str:
    if not metrics:
        return "-"
    known = [(label, _metric(metrics, name)) for name, label in METRICS if name in metrics]
    others = [(name, f"{value:.4f}" if isinstance(value, float) else value) for name, value in metrics.items()]
    others = [(name, value) for name, value in others if name not in dict(METRICS)]
    rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", known + others)
    return format_html("<table>{}</table>", rows)


def _pretty_json(value) -> str:
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
    root = artifacts.root().resolve()
    path = (root / version.confusion_matrix_path).resolve()
    if not path.is_relative_to(root) or path.suffix != ".png" or not path.is_file():
        return None
    return path


def start_message(request: HttpRequest, run: TrainingRun) -> None:
    from training.admin import run_started_message

    level, text = run_started_message(run)
    messages.add_message(request, level, text)


# --- models ------------------------------------------------------------------------------------


class ModelVersionInline(admin.TabularInline):
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

    @admin.display(description="status")
    def status_label(self, version: ModelVersion) -> str:
        return version.status

    @admin.display(description="test accuracy")
    def test_accuracy(self, version: ModelVersion) -> str:
        return _metric(version.metrics, "test_accuracy")

    @admin.display(description="test F1")
    def test_f1(self, version: ModelVersion) -> str:
        return _metric(version.metrics, "test_f1")


class ReadOnlyAdminMixin:
    """Records that are an audit trail: shown, never added, edited or deleted by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    list_display = ("name", "algorithm", "active", "test_accuracy", "test_f1", "version_count", "updated_at")
    search_fields = ("name",)
    list_filter = ("algorithm",)
    actions = ("retrain_selected",)
    inlines = (ModelVersionInline,)
    fields = (
        "name",
        "algorithm",
        "description",
        "active",
        "active_metrics",
        "training_runs",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("name", "algorithm", "active", "active_metrics", "training_runs", "created_at", "updated_at")
    change_list_template = "admin/classifier/mlmodel/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("active_version").annotate(version_count=Count("versions"))

    # Models come into being by training (or a dropped-in file), never by an empty form; and
    # deleting one would orphan its artifact files and its prediction log.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_train_permission(self, request) -> bool:
        return request.user.has_perm("training.add_trainingrun")

    def get_urls(self):
        urls = [
            path("train/", self.admin_site.admin_view(self.train_view), name="classifier_mlmodel_train"),
        ]
        return urls + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_train": self.has_train_permission(request)}
        return super().changelist_view(request, extra_context=extra_context)

    @admin.display(description="active version")
    def active(self, model: MLModel) -> str:
        return version_link(model.active_version, model.name)

    @admin.display(description="test accuracy")
    def test_accuracy(self, model: MLModel) -> str:
        return _metric(model.active_version.metrics if model.active_version else None, "test_accuracy")

    @admin.display(description="test F1")
    def test_f1(self, model: MLModel) -> str:
        return _metric(model.active_version.metrics if model.active_version else None, "test_f1")

    @admin.display(description="versions", ordering="version_count")
    def version_count(self, model: MLModel) -> int:
        return model.version_count

    @admin.display(description="metrics of the active version")
    def active_metrics(self, model: MLModel) -> str:
        return _metrics_table(model.active_version.metrics if model.active_version else None)

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
                start_message(request, run)

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
                start_message(request, run)
                return redirect("admin:training_trainingrun_change", run.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Train a new model",
            "form": form,
            "opts": self.opts,
            "catalogue": [(name, spec.description, spec.defaults) for name, spec in CATALOGUE.items()],
        }
        return TemplateResponse(request, "admin/classifier/mlmodel/train.html", context)


# --- versions ----------------------------------------------------------------------------------


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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
                    "training_run",
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
        promoting_challenger = version.model.challenger_version_id == version.pk
        try:
            outcome = model_version_activate(
                version=version,
                user=request.user,
                actor=f"admin {request.user.get_username()}",
                reason="" if promoting_challenger else "activated from the admin",
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

    @admin.display(description="status")
    def status_label(self, version: ModelVersion) -> str:
        return version.status

    @admin.display(description="test accuracy")
    def test_accuracy(self, version: ModelVersion) -> str:
        return _metric(version.metrics, "test_accuracy")

    @admin.display(description="test F1")
    def test_f1(self, version: ModelVersion) -> str:
        return _metric(version.metrics, "test_f1")

    @admin.display(description="CV accuracy")
    def cv_accuracy(self, version: ModelVersion) -> str:
        return _metric(version.metrics, "cv_accuracy_mean")

    @admin.display(description="metrics")
    def metrics_table(self, version: ModelVersion) -> str:
        return _metrics_table(version.metrics)

    @admin.display(description="classification report")
    def classification_report_table(self, version: ModelVersion) -> str:
        report = version.classification_report or {}
        rows = []
        for label, values in report.items():
            if isinstance(values, dict):
                rows.append(
                    (
                        label,
                        _metric(values, "precision"),
                        _metric(values, "recall"),
                        _metric(values, "f1-score"),
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
        return _pretty_json(version.params)

    @admin.display(description="library versions")
    def library_versions_json(self, version: ModelVersion) -> str:
        return _pretty_json(version.library_versions)

    @admin.display(description="dataset")
    def dataset_json(self, version: ModelVersion) -> str:
        return _pretty_json(version.dataset)

    @admin.display(description="training run")
    def training_run(self, version: ModelVersion) -> str:
        run = version.training_runs.order_by("-id").first()
        if run is None:
            return "-"
        url = reverse("admin:training_trainingrun_change", args=[run.pk])
        return format_html('<a href="{}">run {} ({}, {})</a>', url, run.pk, run.trigger, run.status)


# --- predictions -------------------------------------------------------------------------------


class SpeciesFilter(admin.SimpleListFilter):
    title = "species"
    parameter_name = "species"

    def lookups(self, request, model_admin):
        return [(str(code), name) for code, name in sorted(SPECIES.items())]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(species_id=int(value)) if value and value.isdigit() else queryset


class VersionFilter(admin.SimpleListFilter):
    """The versions by name ("knn v3"), narrowed to the chosen model; one small query."""

    title = "version"
    parameter_name = "version"

    def lookups(self, request, model_admin):
        versions = ModelVersion.objects.select_related("model").order_by("model__name", "-number")
        model_id = request.GET.get("model__id__exact")
        if model_id and model_id.isdigit():
            versions = versions.filter(model_id=int(model_id))
        return [(str(version.pk), f"{version.model.name} v{version.number}") for version in versions]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(version_id=int(value)) if value and value.isdigit() else queryset


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "model_name", "version_number", "species", "endpoint", "latency", "truth")
    list_filter = ("model", VersionFilter, SpeciesFilter, ("created_at", admin.DateFieldListFilter), "endpoint")
    list_select_related = ("model", "version")
    search_fields = ("id",)
    search_help_text = "A prediction id (shown in the X-Prediction-Id response header)."
    ordering = ("-id",)
    sortable_by = ("id", "created_at")  # columns with an index behind them
    # A million rows: no COUNT(*) over the table on every page, no per-filter facet counts.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 100
    fields = (
        "id",
        "created_at",
        "model",
        "version_display",
        "endpoint",
        "species",
        "probabilities_json",
        "inputs_json",
        "latency",
        "truth",
        "feedback_at",
        "feedback_by",
    )
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        """Search by id only: an indexed primary-key lookup, never a scan."""
        term = search_term.strip().lstrip("#")
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        return queryset.none(), False

    @admin.display(description="model", ordering="model__name")
    def model_name(self, prediction: Prediction) -> str:
        return prediction.model.name

    @admin.display(description="version")
    def version_number(self, prediction: Prediction) -> str:
        return f"v{prediction.version.number}"

    @admin.display(description="version")
    def version_display(self, prediction: Prediction) -> str:
        return version_link(prediction.version, prediction.model.name)

    @admin.display(description="species")
    def species(self, prediction: Prediction) -> str:
        return f"{prediction.species_id} ({SPECIES.get(prediction.species_id, '?')})"

    @admin.display(description="true species")
    def truth(self, prediction: Prediction) -> str:
        if prediction.true_species_id is None:
            return "-"
        return f"{prediction.true_species_id} ({SPECIES.get(prediction.true_species_id, '?')})"

    @admin.display(description="latency")
    def latency(self, prediction: Prediction) -> str:
        return f"{prediction.latency_ms:.2f} ms"

    @admin.display(description="probabilities")
    def probabilities_json(self, prediction: Prediction) -> str:
        return _pretty_json(prediction.probabilities) if prediction.probabilities is not None else "-"

    @admin.display(description="inputs")
    def inputs_json(self, prediction: Prediction) -> str:
        return _pretty_json(prediction.inputs)
