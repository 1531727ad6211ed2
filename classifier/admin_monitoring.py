"""Admin: each model's monitoring page, the model list's drift badge, a version's live figures."""

from __future__ import annotations

from datetime import datetime

from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from .models import MLModel, ModelVersion, MonitoringReport
from .monitoring.page import model_monitoring_context, version_feedback
from .monitoring.service import MonitoringError, monitoring_check

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
        return TemplateResponse(request, "admin/classifier/mlmodel/monitoring.html", context)


def version_monitoring_html(version: ModelVersion) -> str:
    """A version's prediction count, live accuracy with its interval and feedback's confusion matrix."""
    return render_to_string(
        "admin/classifier/modelversion/monitoring.html", {"version": version, **version_feedback(version=version)}
    )
