"""Admin: each model's monitoring page, the model list's drift badge, a version's live figures."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
from django.contrib import admin, messages
from django.db.models import Count, Max, OuterRef, Subquery
from django.db.models.functions import TruncDate
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from core.encoding import FIELDS, SPECIES, SPECIES_NAMES

from ..models import MLModel, ModelVersion, MonitoringReport, Prediction
from ..monitoring import charts
from ..monitoring.quality import wilson_interval
from ..services.monitoring import MonitoringError, monitoring_analysis, monitoring_check

HISTORY_ROWS = 20


def daily_volume(*, model: MLModel, since: datetime, until: datetime) -> tuple[list[date], dict[str, list[int]]]:
    """Predictions per day per version of the model in the window (one grouped query, no join)."""
    rows = (
        Prediction.objects.filter(model=model, created_at__gte=since, created_at__lt=until)
        .order_by()
        .annotate(day=TruncDate("created_at"))
        .values("day", "version_id")
        .annotate(n=Count("id"))
    )
    first, last = timezone.localtime(since).date(), timezone.localtime(until).date()
    calendar = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    position = {day: index for index, day in enumerate(calendar)}
    numbers = dict(model.versions.values_list("id", "number"))
    series: dict[int, list[int]] = {}
    for row in rows:
        counts = series.setdefault(numbers[row["version_id"]], [0] * len(calendar))
        if row["day"] in position:
            counts[position[row["day"]]] += row["n"]
    return calendar, {f"v{number}": series[number] for number in sorted(series)}


def _accuracy_points(daily: list[dict]) -> list[tuple[date, float, float, float]]:
    points = []
    for day in daily:
        if day["labelled"]:
            low, high = wilson_interval(day["correct"], day["labelled"])
            points.append((date.fromisoformat(day["date"]), day["correct"] / day["labelled"], low, high))
    return points


def model_monitoring_context(*, model: MLModel, version: ModelVersion | None = None, since=None, until=None) -> dict:
    """The monitoring page of a model: report, pictures, drifted features, checks history."""
    analysis = monitoring_analysis(model=model, version=version, since=since, until=until)
    report = analysis.report
    window = report["window"]
    days, series = daily_volume(
        model=model, since=datetime.fromisoformat(window["since"]), until=datetime.fromisoformat(window["until"])
    )
    pictures = {
        "volume": charts.volume_chart(days, series),
        "accuracy": charts.accuracy_chart(_accuracy_points(report["daily"])),
    }
    drift = report["prediction_drift"]
    if drift is not None:
        pictures["mix"] = charts.mix_chart(drift["current"], drift["reference"], p_value=drift["p_value"])
    elif analysis.reference is not None:
        counts = analysis.reference.class_counts
        total = sum(counts.values())
        reference_mix = {SPECIES[key]: counts.get(key, 0) / total for key in sorted(SPECIES)}
        predicted = analysis.window["species_id"]
        current = {SPECIES[key]: float(np.mean(predicted == key)) if predicted.size else 0.0 for key in sorted(SPECIES)}
        pictures["mix"] = charts.mix_chart(current, reference_mix)
    drifted = [
        {
            **feature,
            "reference": analysis.reference.values[feature["name"]],
            "current": analysis.window["features"][:, FIELDS.index(feature["name"])],
        }
        for feature in report["features"]
        if feature["drift"]
    ]
    if drifted:
        pictures["histograms"] = charts.feature_histograms(drifted)
    history = list(MonitoringReport.objects.filter(model=model).select_related("version")[:HISTORY_ROWS])
    return {
        "report": report,
        "version": analysis.version,
        "pictures": {name: mark_safe(svg) for name, svg in pictures.items()},  # our own SVG text
        "drifted_names": [feature["name"] for feature in drifted],
        "history": history,
        "recall": report["live_accuracy"]["recall"],
    }


def version_feedback(*, version: ModelVersion) -> dict:
    """A version's prediction count, live accuracy with its interval, and feedback's confusion matrix."""
    predictions = Prediction.objects.filter(version=version).count()
    cells = (
        Prediction.objects.filter(version=version, true_species_id__isnull=False)
        .order_by()
        .values("true_species_id", "species_id")
        .annotate(n=Count("id"))
    )
    codes = sorted(SPECIES)
    matrix = [[0] * len(codes) for _ in codes]
    for cell in cells:
        matrix[codes.index(cell["true_species_id"])][codes.index(cell["species_id"])] = cell["n"]
    labelled = sum(map(sum, matrix))
    correct = sum(matrix[i][i] for i in range(len(codes)))
    result = {"predictions": predictions, "labelled": labelled, "correct": correct, "accuracy": None}
    if labelled:
        low, high = wilson_interval(correct, labelled)
        result.update(accuracy=correct / labelled, ci_low=low, ci_high=high)
        title = f"Feedback on {version}: {labelled} labelled"
        result["confusion_svg"] = mark_safe(charts.confusion_chart(list(SPECIES_NAMES), matrix, title))  # our own SVG
    return result


def latest_checks(*, model_ids: list[int]) -> dict[int, MonitoringReport]:
    """Each model's latest stored check (the model list's drift badge)."""
    latest = (
        MonitoringReport.objects.filter(model_id__in=model_ids)
        .order_by()
        .values("model_id")
        .annotate(latest=Max("id"))
        .values_list("latest", flat=True)
    )
    return {check.model_id: check for check in MonitoringReport.objects.filter(id__in=list(latest))}


BADGE_COLOURS = {"drift": "#ba2121", "no_drift": "#2e7d32", "not_enough_data": "#777", "no_reference": "#777"}


def _time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return timezone.make_aware(value) if timezone.is_naive(value) else value


class MonitoringAdminMixin:
    """For MLModelAdmin: ``<id>/monitoring/`` and a ``drift`` column from the latest check."""

    def get_queryset(self, request):
        latest = MonitoringReport.objects.filter(model=OuterRef("pk")).order_by("-created_at", "-id")
        return (
            super()
            .get_queryset(request)
            .annotate(
                latest_verdict=Subquery(latest.values("verdict")[:1]),
                latest_version=Subquery(latest.values("version__number")[:1]),
            )
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        urls = [
            path("<int:object_id>/monitoring/", view(self.monitoring_view), name="classifier_mlmodel_monitoring"),
        ]
        return urls + super().get_urls()

    @admin.display(description="monitoring")
    def monitoring(self, model: MLModel) -> str:
        link = reverse("admin:classifier_mlmodel_monitoring", args=[model.pk])
        return format_html('<a href="{}">Drift, species mix and live accuracy</a>', link)

    @admin.display(description="drift (latest check)")
    def drift_badge(self, model: MLModel) -> str:
        link = reverse("admin:classifier_mlmodel_monitoring", args=[model.pk])
        verdict = getattr(model, "latest_verdict", None)
        if verdict is None:
            return format_html('<a href="{}">not checked yet</a>', link)
        label = MonitoringReport.Verdict(verdict).label
        return format_html(
            '<a href="{}"><span style="background:{};color:#fff;padding:1px 8px;border-radius:9px">{}</span> v{}</a>',
            link,
            BADGE_COLOURS.get(verdict, "#777"),
            label,
            model.latest_version,
        )

    def monitoring_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        model = self.get_object(request, str(object_id))
        if model is None or not self.has_view_permission(request, model):
            raise Http404("No such model.")
        can_check = request.user.has_perm("classifier.add_monitoringreport") and model.active_version_id is not None
        if request.method == "POST":
            if not can_check:
                raise Http404("You may not store monitoring checks.")
            check = monitoring_check(model=model)
            self.message_user(request, f"Checked {check.version}: {check.get_verdict_display()}.", messages.SUCCESS)
            return HttpResponseRedirect(request.path)
        versions = list(model.versions.order_by("-number").values_list("number", flat=True))
        version = None
        if request.GET.get("version", "").isdigit():
            version = model.versions.filter(number=int(request.GET["version"])).first()
        since, until = _time(request.GET.get("since")), _time(request.GET.get("until"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": model,
            "title": f"Monitoring: {model.name}",
            "version_numbers": versions,
            "since_value": request.GET.get("since", ""),
            "until_value": request.GET.get("until", ""),
            "can_check": can_check,
        }
        if version is None and model.active_version_id is None and versions:
            version = model.versions.order_by("-number").first()
        if version is None and model.active_version_id is None:
            self.message_user(request, f"{model.name} has no version to monitor yet.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:classifier_mlmodel_change", args=[model.pk]))
        try:
            context.update(model_monitoring_context(model=model, version=version, since=since, until=until))
        except MonitoringError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(request.path)
        context["drifted_count"] = sum(feature["drift"] for feature in context["report"]["features"])
        # The window in use, in UTC, for the header and as the form's starting values.
        for end in ("since", "until"):
            moment = datetime.fromisoformat(context["report"]["window"][end])
            context[f"window_{end}"] = moment
            context[f"window_{end}_input"] = moment.strftime("%Y-%m-%dT%H:%M")
        return TemplateResponse(request, "admin/classifier/mlmodel/monitoring.html", context)


def version_monitoring_html(version: ModelVersion) -> str:
    """A version's prediction count, live accuracy with its interval and feedback's confusion matrix."""
    return render_to_string(
        "admin/classifier/modelversion/monitoring.html", {"version": version, **version_feedback(version=version)}
    )
