"""Registry and prediction-log reads."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, F, Q, QuerySet

from .models import MLModel, ModelVersion, Prediction, RegistryState


@dataclass(frozen=True)
class ServingEntry:
    """What a serving process needs to know about one version, without touching the ORM."""

    model_id: int
    model_name: str
    version_id: int
    number: int
    sha256: str
    artifact_path: str
    broken_reason: str
    estimator: str
    runtime: str
    onnx_path: str
    onnx_sha256: str
    metrics: dict


def serving_entry(version: ModelVersion) -> ServingEntry:
    """What serving needs to know about ``version`` (its model fetched with it)."""
    return ServingEntry(
        model_id=version.model_id,
        model_name=version.model.name,
        version_id=version.pk,
        number=version.number,
        sha256=version.sha256,
        artifact_path=version.artifact_path,
        broken_reason=version.broken_reason,
        estimator=version.estimator,
        runtime=version.runtime,
        onnx_path=version.onnx_path,
        onnx_sha256=version.onnx_sha256,
        metrics=version.metrics,
    )


def registry_generation() -> int:
    return RegistryState.objects.filter(id=1).values_list("generation", flat=True).first() or 0


def registry_active_entries() -> dict[str, ServingEntry]:
    """Every model's active version, by model name (one query)."""
    versions = ModelVersion.objects.select_related("model").filter(model__active_version_id=F("id"))
    return {version.model.name: serving_entry(version) for version in versions}


def model_version_entry(*, model_name: str, number: int) -> ServingEntry | None:
    version = ModelVersion.objects.select_related("model").filter(model__name=model_name, number=number).first()
    return serving_entry(version) if version else None


def model_list() -> QuerySet[MLModel]:
    return MLModel.objects.select_related("active_version").annotate(version_count=Count("versions"))


def prediction_list() -> QuerySet[Prediction]:
    return Prediction.objects.select_related("model", "version").order_by("-id")


def version_live_accuracy(*, version: ModelVersion) -> dict:
    """Accuracy of a version's predictions against the feedback received so far."""
    stats = Prediction.objects.filter(version=version, true_species_id__isnull=False).aggregate(
        labelled=Count("id"), correct=Count("id", filter=Q(true_species_id=F("species_id")))
    )
    labelled = stats["labelled"] or 0
    return {
        "labelled": labelled,
        "correct": stats["correct"] or 0,
        "accuracy": (stats["correct"] / labelled) if labelled else None,
    }


def versions_live_accuracy(*, version_ids: list[int]) -> dict[int, dict]:
    """``version_live_accuracy`` for many versions in one query (versions without feedback are absent)."""
    rows = (
        Prediction.objects.filter(version_id__in=version_ids, true_species_id__isnull=False)
        .order_by()
        .values("version_id")
        .annotate(labelled=Count("id"), correct=Count("id", filter=Q(true_species_id=F("species_id"))))
    )
    return {
        row["version_id"]: {
            "labelled": row["labelled"],
            "correct": row["correct"],
            "accuracy": row["correct"] / row["labelled"],
        }
        for row in rows
    }
