"""Admin for the prediction log: read-only, and fast at millions of rows."""

from __future__ import annotations

from django.contrib import admin

from core.encoding import SPECIES

from ..models import ModelVersion, Prediction
from ..paginators import EstimatedCountPaginator
from .common import ReadOnlyAdminMixin, pretty_json, version_link


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
        return pretty_json(prediction.probabilities) if prediction.probabilities is not None else "-"

    @admin.display(description="inputs")
    def inputs_json(self, prediction: Prediction) -> str:
        return pretty_json(prediction.inputs)
