"""Registry and prediction-log reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, F, Q, QuerySet

from .comparison import ALPHA, MIN_ROWS, TEST_NAME, mcnemar_exact_p
from .models import MLModel, ModelActivation, ModelVersion, Prediction, RegistryState


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
    challenger: ServingEntry | None = None  # scores the same rows in shadow; never answers


def serving_entry(version: ModelVersion, *, challenger: ModelVersion | None = None) -> ServingEntry:
    """What serving needs to know about ``version`` (its model fetched with it), and its challenger's."""
    if challenger is not None and (challenger.pk == version.pk or challenger.broken_reason):
        challenger = None
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
        challenger=serving_entry(challenger) if challenger is not None else None,
    )


def registry_generation() -> int:
    return RegistryState.objects.filter(id=1).values_list("generation", flat=True).first() or 0


def registry_active_entries() -> dict[str, ServingEntry]:
    """Every model's active version with its challenger, by model name (one query)."""
    versions = ModelVersion.objects.select_related("model", "model__challenger_version").filter(
        model__active_version_id=F("id")
    )
    entries = {}
    for version in versions:
        challenger = version.model.challenger_version
        if challenger is not None:
            challenger.model = version.model
        entries[version.model.name] = serving_entry(version, challenger=challenger)
    return entries


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


def activation_list(*, model: MLModel) -> QuerySet[ModelActivation]:
    """The model's ledger: every activation, newest first."""
    return model.activations.select_related("model", "version", "previous_version", "activated_by").order_by(
        "-created_at", "-id"
    )


def version_serving_at(*, model: MLModel, at: datetime) -> ModelVersion | None:
    """The version the model served at ``at``: the last activation at or before it (None before the first)."""
    activation = (
        model.activations.select_related("version").filter(created_at__lte=at).order_by("-created_at", "-id").first()
    )
    return activation.version if activation else None


def challenger_stats(*, model: MLModel) -> dict | None:
    """How the challenger did in shadow against the champion since it was set (None without one).

    Only rows answered by the current champion count; the paired test uses the labelled
    ones (feedback given), the same exact McNemar test as the promotion gate.
    """
    challenger, champion = model.challenger_version, model.active_version
    if challenger is None:
        return None
    rows = Prediction.objects.filter(challenger_version=challenger, model=model)
    if champion is not None:
        rows = rows.filter(version=champion)
    if model.challenger_since is not None:
        rows = rows.filter(created_at__gte=model.challenger_since)
    labelled = Q(true_species_id__isnull=False)
    champion_right = labelled & Q(true_species_id=F("species_id"))
    challenger_right = labelled & Q(true_species_id=F("challenger_species_id"))
    counts = rows.order_by().aggregate(
        shadow=Count("id"),
        agree=Count("id", filter=Q(species_id=F("challenger_species_id"))),
        labelled=Count("id", filter=labelled),
        champion_correct=Count("id", filter=champion_right),
        challenger_correct=Count("id", filter=challenger_right),
        champion_only=Count("id", filter=champion_right & ~Q(true_species_id=F("challenger_species_id"))),
        challenger_only=Count("id", filter=challenger_right & ~Q(true_species_id=F("species_id"))),
    )
    p_value = mcnemar_exact_p(counts["challenger_only"], counts["champion_only"])
    if counts["labelled"] < MIN_ROWS:
        recommendation = "not enough labels"
    elif p_value <= ALPHA and counts["challenger_only"] > counts["champion_only"]:
        recommendation = "promote challenger"
    else:
        recommendation = "keep champion"
    return {
        "model": model.name,
        "champion_version": champion.number if champion else None,
        "challenger_version": challenger.number,
        "since": model.challenger_since,
        "shadow_predictions": counts["shadow"],
        "agreement": counts["agree"] / counts["shadow"] if counts["shadow"] else None,
        "labelled": counts["labelled"],
        "champion_correct": counts["champion_correct"],
        "challenger_correct": counts["challenger_correct"],
        "champion_only": counts["champion_only"],
        "challenger_only": counts["challenger_only"],
        "test": TEST_NAME,
        "p_value": p_value,
        "recommendation": recommendation,
    }


def model_version_numbers(*, model_name: str) -> list[int]:
    """Every version number of a model, oldest first."""
    return list(ModelVersion.objects.filter(model__name=model_name).order_by("number").values_list("number", flat=True))
