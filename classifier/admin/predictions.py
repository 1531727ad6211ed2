"""Admin for the prediction log: read-only but for feedback, and fast at millions of rows.

Feedback (the true species) is given on a prediction's page or to many at once with the
list's actions; both call ``prediction_feedback_record``, as the API does.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.encoding import FIELDS, ISLANDS, SEXES, SPECIES, SPECIES_BY_NAME

from ..models import ModelVersion, Prediction
from ..paginators import EstimatedCountPaginator
from ..services.predictions import prediction_feedback_record
from .common import PageTitlesMixin, ReadOnlyAdminMixin, pretty_json, version_link

INPUT_UNITS = {"bill_length_mm": "mm", "bill_depth_mm": "mm", "flipper_length_mm": "mm", "body_mass_g": "g"}


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


class AnswerFilter(admin.SimpleListFilter):
    """Wrong answers: the predictions whose feedback names another species (the feedback index serves it)."""

    title = "answer"
    parameter_name = "answer"

    def lookups(self, request, model_admin):
        return [("wrong", "wrong answers"), ("right", "right answers"), ("unlabelled", "no feedback yet")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "wrong":
            return queryset.filter(true_species_id__isnull=False).exclude(true_species_id=F("species_id"))
        if value == "right":
            return queryset.filter(true_species_id=F("species_id"))
        if value == "unlabelled":
            return queryset.filter(true_species_id__isnull=True)
        return queryset


def _feedback_action(species_id: int):
    name = SPECIES[species_id]

    @admin.action(description=f"Set the true species: {name}", permissions=["feedback"])
    def action(modeladmin, request, queryset) -> None:
        count = 0
        for prediction in queryset.select_related(None):
            prediction_feedback_record(prediction=prediction, species_id=species_id, user=request.user)
            count += 1
        modeladmin.message_user(request, f"Recorded {name} as the true species of {count} prediction(s).")

    action.__name__ = f"feedback_{name.lower()}"
    return action


@admin.register(Prediction)
class PredictionAdmin(PageTitlesMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Narrow columns, so that the list fits 1440 px without a horizontal scroll.
    list_display = (
        "id",
        "created",
        "model_name",
        "version_number",
        "species",
        "answer_probability",
        "truth",
        "latency",
        "endpoint_label",
    )
    list_filter = (
        AnswerFilter,
        "model",
        VersionFilter,
        SpeciesFilter,
        ("created_at", admin.DateFieldListFilter),
        "endpoint",
    )
    actions = tuple(_feedback_action(species_id) for species_id in sorted(SPECIES))
    change_form_template = "admin/classifier/prediction/change_form.html"
    list_select_related = ("model", "version")
    search_fields = ("id",)
    search_help_text = "A prediction id (shown in the X-Prediction-Id response header)."
    ordering = ("-id",)
    sortable_by = ("id", "created")  # columns with an index behind them
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
        "probabilities_table",
        "inputs_table",
        "latency",
        "truth",
        "feedback_at",
        "feedback_by",
    )
    readonly_fields = fields

    def has_feedback_permission(self, request) -> bool:
        return request.user.has_perm("classifier.change_prediction")

    def get_urls(self):
        feedback = path(
            "<int:object_id>/feedback/",
            self.admin_site.admin_view(self.feedback_view),
            name="classifier_prediction_feedback",
        )
        return [feedback, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {
            **(extra_context or {}),
            "can_give_feedback": self.has_feedback_permission(request),
            "species_choices": sorted(SPECIES.items()),
        }
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def feedback_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """POST species=<id or name>: record the true species of this prediction."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_feedback_permission(request):
            raise PermissionDenied
        prediction = self.get_object(request, str(object_id))
        if prediction is None:
            raise Http404("No such prediction.")
        raw = request.POST.get("species", "").strip()
        species_id = int(raw) if raw.isdigit() else SPECIES_BY_NAME.get(raw.lower())
        if species_id not in SPECIES:
            self.message_user(request, f"species: choose one of {', '.join(SPECIES.values())}.", messages.ERROR)
        else:
            prediction_feedback_record(prediction=prediction, species_id=species_id, user=request.user)
            verdict = "right" if species_id == prediction.species_id else "wrong"
            self.message_user(
                request,
                f"Recorded {SPECIES[species_id]} as the true species: the answer was {verdict}.",
                messages.SUCCESS,
            )
        return redirect("admin:classifier_prediction_change", prediction.pk)

    def get_search_results(self, request, queryset, search_term):
        """Search by id only: an indexed primary-key lookup, never a scan."""
        term = search_term.strip().lstrip("#")
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        return queryset.none(), False

    @admin.display(description="created", ordering="created_at")
    def created(self, prediction: Prediction) -> str:
        when = timezone.localtime(prediction.created_at)
        return format_html('<span title="{}">{}</span>', when.isoformat(" ", "seconds"), when.strftime("%m-%d %H:%M"))

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
        return SPECIES.get(prediction.species_id, str(prediction.species_id))

    @admin.display(description="probability")
    def answer_probability(self, prediction: Prediction) -> str:
        """The probability the model gave the species it answered."""
        value = (prediction.probabilities or {}).get(SPECIES.get(prediction.species_id, ""))
        return "-" if value is None else f"{value:.2f}"

    @admin.display(description="truth")
    def truth(self, prediction: Prediction) -> str:
        if prediction.true_species_id is None:
            return "-"
        name = SPECIES.get(prediction.true_species_id, str(prediction.true_species_id))
        if prediction.true_species_id == prediction.species_id:
            return format_html('{} <span style="color: #2e7d32" title="right answer">✓</span>', name)
        return format_html('{} <strong style="color: #c62828" title="wrong answer">✗</strong>', name)

    @admin.display(description="latency")
    def latency(self, prediction: Prediction) -> str:
        return f"{prediction.latency_ms:.1f} ms"

    @admin.display(description="endpoint", ordering="endpoint")
    def endpoint_label(self, prediction: Prediction) -> str:
        """The value ("predict"), with the full route as its tooltip."""
        return format_html('<span title="{}">{}</span>', prediction.get_endpoint_display(), prediction.endpoint)

    @admin.display(description="probabilities")
    def probabilities_table(self, prediction: Prediction) -> str:
        if prediction.probabilities is None:
            return "-"
        rows = [(name, f"{value:.4f}") for name, value in prediction.probabilities.items()]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description="inputs")
    def inputs_table(self, prediction: Prediction) -> str:
        """The penguin as a person describes it: Biscoe, female, 46.1 mm."""
        inputs = prediction.inputs or {}
        if not isinstance(inputs, dict):
            return pretty_json(inputs)
        rows = []
        for name in [*FIELDS, *(key for key in inputs if key not in FIELDS)]:
            if name not in inputs:
                continue
            rows.append((name.replace("_", " "), _input_text(name, inputs[name])))
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))


def _input_text(name: str, value) -> str:
    labels = {"island": ISLANDS, "sex": SEXES}.get(name)
    if labels is not None and isinstance(value, int | float) and int(value) in labels:
        return f"{labels[int(value)]} ({int(value)})"
    if name == "year" and isinstance(value, int | float):
        return str(int(value))
    if isinstance(value, float) and name in INPUT_UNITS:
        return f"{value:g} {INPUT_UNITS[name]}"
    if isinstance(value, int) and name in INPUT_UNITS:
        return f"{value} {INPUT_UNITS[name]}"
    return str(value)
