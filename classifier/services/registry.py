"""Registry writes: register a trained version, activate one, mark one broken, convert one.

Every write takes the registry lock and bumps its generation, so each serving process
reloads the active versions at its next check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.errors import DomainError
from core.hashing import sha256_bytes

from .. import artifacts, onnx_runtime
from ..estimators import Inspection, inspect_estimator
from ..models import MLModel, ModelActivation, ModelVersion, RegistryState
from ..selectors import challenger_stats

logger = logging.getLogger(__name__)


class RegistryError(DomainError):
    """A registry operation that cannot be done; the message tells the user why."""

    status_code = 409
    code = "conflict"


class ModelNotFound(RegistryError):
    status_code = 404
    code = "model_not_found"


class ModelBroken(RegistryError):
    code = "model_unavailable"


class NoProbabilities(RegistryError):
    code = "no_probabilities"


class ChallengerInvalid(RegistryError):
    """The version cannot shadow its model (it is the champion, or it cannot serve)."""

    status_code = 400
    code = "invalid"


def lock_registry() -> RegistryState:
    """Lock the registry row (inside a transaction) and bump its generation."""
    RegistryState.objects.get_or_create(id=1)
    state = RegistryState.objects.select_for_update().get(id=1)
    RegistryState.objects.filter(id=1).update(generation=F("generation") + 1)
    return state


def next_number(model: MLModel) -> int:
    last = model.versions.order_by("-number").values_list("number", flat=True).first()
    return (last or 0) + 1


def set_active(
    model: MLModel,
    version: ModelVersion | None,
    *,
    user: AbstractBaseUser | None,
    actor: str,
    reason: str,
    evidence: dict | None = None,
) -> ModelActivation:
    """Point the model at ``version`` and write the ledger row (the caller holds the registry lock)."""
    previous = model.active_version_id
    model.active_version = version
    fields = ["active_version", "updated_at"]
    if version is not None and model.challenger_version_id == version.pk:
        model.challenger_version, model.challenger_since = None, None  # a champion does not shadow itself
        fields += ["challenger_version", "challenger_since"]
    model.save(update_fields=fields)
    return ModelActivation.objects.create(
        model=model,
        version=version,
        previous_version_id=previous,
        activated_by=user if user is not None and user.is_authenticated else None,
        actor=actor,
        reason=reason,
        evidence=evidence or {},
    )


@dataclass
class NewVersion:
    """What a trainer hands to the registry (everything but the file location)."""

    algorithm: str
    params: dict[str, Any]
    metrics: dict[str, float]
    classification_report: dict[str, Any]
    confusion_matrix: dict[str, Any]
    classes: list[str]
    class_values: list[Any]
    feature_names: list[str]
    dataset: dict[str, Any]
    n_train: int
    n_test: int
    training_seconds: float
    library_versions: dict[str, str]
    estimator: str
    extra_files: dict[str, bytes] = field(default_factory=dict)  # file name → bytes, beside the model
    holdout: dict[str, Any] = field(default_factory=dict)  # which rows it trained and was tested on
    evaluation: dict[str, Any] = field(default_factory=dict)  # paired comparison with the champion
    reference: dict[str, Any] = field(default_factory=dict)  # training rows' profile, for monitoring


def fast_path_export(estimator: Any, inspection: Inspection | None = None) -> onnx_runtime.Export:
    """The estimator converted for onnxruntime and checked for parity, or why it is not."""
    try:
        return onnx_runtime.onnx_export(estimator, inspection or inspect_estimator(estimator))
    except Exception as exc:  # the pickle still serves: never fail a registration over the fast path
        logger.exception("ONNX export failed unexpectedly")
        return onnx_runtime.Export(None, f"ONNX export failed ({type(exc).__name__}: {str(exc)[:200]})")


def onnx_runtime_fields(export: onnx_runtime.Export, folder: Path) -> dict[str, str]:
    """Store the ONNX file (when parity holds) in the version's folder; the row's runtime fields."""
    if not export.ok:
        return {"runtime": ModelVersion.Runtime.SKLEARN, "runtime_reason": export.reason}
    path = folder / onnx_runtime.FILE_NAME
    artifacts.write_atomic(path, export.data)
    return {
        "runtime": ModelVersion.Runtime.ONNX,
        "runtime_reason": "",
        "onnx_path": artifacts.relative(path),
        "onnx_sha256": sha256_bytes(export.data),
    }


def model_version_register(
    *,
    model_name: str,
    pipeline: Any,
    info: NewVersion,
    activate: bool,
    activation_note: str = "",
    user: AbstractBaseUser | None = None,
    triggered_by: str = "",
) -> ModelVersion:
    """Store a trained pipeline as the model's next immutable version.

    The file is written atomically into the version's own folder before the row exists,
    so no row ever points at a half-written file; older versions' files are untouched.
    Beside it goes ``model.onnx`` when the pipeline converts with parity (runtime ``onnx``);
    otherwise the version is served by scikit-learn and ``runtime_reason`` says why.
    """
    data = artifacts.dump(pipeline)
    export = fast_path_export(pipeline)  # before taking the registry lock: it takes a moment
    with transaction.atomic():
        lock_registry()
        model, _ = MLModel.objects.select_for_update().get_or_create(
            name=model_name, defaults={"algorithm": info.algorithm}
        )
        number = next_number(model)
        folder = artifacts.version_dir(model.name, number)
        model_path = folder / "model.joblib"
        artifacts.write_atomic(model_path, data)
        confusion_path = ""
        for file_name, content in info.extra_files.items():
            artifacts.write_atomic(folder / file_name, content)
            if file_name.endswith(".png"):
                confusion_path = artifacts.relative(folder / file_name)
        runtime_fields = onnx_runtime_fields(export, folder)
        version = ModelVersion.objects.create(
            model=model,
            number=number,
            source=ModelVersion.Source.TRAINED,
            algorithm=info.algorithm,
            estimator=info.estimator,
            artifact_path=artifacts.relative(model_path),
            sha256=sha256_bytes(data),
            size_bytes=len(data),
            params=info.params,
            metrics=info.metrics,
            classification_report=info.classification_report,
            confusion_matrix=info.confusion_matrix,
            confusion_matrix_path=confusion_path,
            classes=info.classes,
            class_values=info.class_values,
            feature_names=info.feature_names,
            library_versions=info.library_versions,
            dataset=info.dataset,
            holdout=info.holdout,
            evaluation=info.evaluation,
            n_train=info.n_train,
            n_test=info.n_test,
            training_seconds=info.training_seconds,
            reference=info.reference,
            reference_note="" if info.reference else "The trainer kept no reference profile.",
            triggered_by=triggered_by,
            created_by=user if user is not None and user.is_authenticated else None,
            activation_note=activation_note,
            **runtime_fields,
        )
        if not model.algorithm:
            model.algorithm = info.algorithm
        if activate:
            set_active(
                model,
                version,
                user=user,
                actor=triggered_by,
                reason=activation_note or "trained",
                evidence=info.evaluation,
            )
        else:
            model.save(update_fields=["algorithm", "updated_at"])
    return version


@dataclass(frozen=True)
class ActivationOutcome:
    version: ModelVersion
    changed: bool  # False: it was already active, nothing was recorded
    activation: ModelActivation | None


def model_version_activate(
    *,
    version: ModelVersion,
    user: AbstractBaseUser | None = None,
    actor: str = "",
    reason: str = "",
    evidence: dict | None = None,
) -> ActivationOutcome:
    """Make ``version`` the one its model serves (promotion or rollback), recorded in the ledger.

    Activating the version already active changes nothing and records nothing. Promoting the
    model's challenger ends its shadow run and records its statistics as the evidence.
    """
    with transaction.atomic():
        lock_registry()  # first, as every registry write does: one lock order, no deadlock
        version = ModelVersion.objects.select_related("model").get(pk=version.pk)
        if version.broken_reason:
            raise ModelBroken(f"{version} cannot be activated: {version.broken_reason}.")
        model = (
            MLModel.objects.select_for_update(of=("self",))
            .select_related("active_version", "challenger_version")
            .get(pk=version.model_id)
        )
        version.model = model
        if model.active_version_id == version.pk:
            return ActivationOutcome(version=version, changed=False, activation=None)
        if model.challenger_version_id == version.pk:
            stats = challenger_stats(model=model)
            evidence = evidence or _jsonable_stats(stats)
            reason = reason or (
                f"challenger v{version.number} promoted after {stats['shadow_predictions']} shadow predictions "
                f"({stats['labelled']} labelled; recommendation: {stats['recommendation']})"
            )
        activation = set_active(
            model, version, user=user, actor=actor, reason=reason or "activated", evidence=evidence or {}
        )
    return ActivationOutcome(version=version, changed=True, activation=activation)


def _jsonable_stats(stats: dict) -> dict:
    since = stats.get("since")
    return {**stats, "since": since.isoformat() if since else None}


def model_challenger_set(*, version: ModelVersion, user: AbstractBaseUser | None = None) -> MLModel:
    """Shadow every prediction of the version's model with ``version`` from now on.

    Raises ChallengerInvalid when the version is the active one or cannot serve.
    """
    with transaction.atomic():
        lock_registry()
        version = ModelVersion.objects.select_related("model").get(pk=version.pk)
        model = MLModel.objects.select_for_update().get(pk=version.model_id)
        if version.broken_reason:
            raise ChallengerInvalid(f"{version} cannot be a challenger: {version.broken_reason}.")
        if model.active_version_id == version.pk:
            raise ChallengerInvalid(
                f"{version} is the active version (the champion); choose another version as its challenger."
            )
        if model.challenger_version_id != version.pk:
            model.challenger_version = version
            model.challenger_since = timezone.now()
            model.save(update_fields=["challenger_version", "challenger_since", "updated_at"])
    logger.info("%s: challenger set to v%s by %s", model.name, version.number, user or "system")
    return model


def model_challenger_clear(*, model: MLModel, user: AbstractBaseUser | None = None) -> bool:
    """Stop shadowing the model's predictions; returns whether a challenger was set."""
    with transaction.atomic():
        lock_registry()
        model = MLModel.objects.select_for_update().get(pk=model.pk)
        if model.challenger_version_id is None:
            return False
        model.challenger_version = None
        model.challenger_since = None
        model.save(update_fields=["challenger_version", "challenger_since", "updated_at"])
    logger.info("%s: challenger cleared by %s", model.name, user or "system")
    return True


def model_version_mark_broken(*, version_id: int, reason: str) -> None:
    """Record that a version cannot serve (missing, tampered or unusable file)."""
    with transaction.atomic():
        updated = ModelVersion.objects.filter(pk=version_id).exclude(broken_reason=reason).update(broken_reason=reason)
        if updated:
            lock_registry()
    if updated:
        logger.warning("model version %s marked broken: %s", version_id, reason)


def model_version_restore(*, version_id: int, reason: str) -> bool:
    """Clear a version's broken mark set for ``reason``, its files matching their hashes again.

    The next load of a version broken by a damaged or missing file re-verifies it (as a
    registry sync would); a file restored byte for byte serves again without anyone running
    a sync. Recorded in the log; every serving process sees it at its next registry check.
    """
    with transaction.atomic():
        updated = ModelVersion.objects.filter(pk=version_id, broken_reason=reason).update(broken_reason="")
        if updated:
            lock_registry()
    if updated:
        logger.warning(
            "model version %s restored: its files match their registry hashes again (it was broken: %s)",
            version_id,
            reason,
        )
    return bool(updated)


def model_version_convert(*, version: ModelVersion) -> ModelVersion:
    """Give an existing version the fast path: export its pickle to ONNX, with the parity check.

    For versions registered before the fast path existed (their runtime is ``sklearn`` with
    no reason) or whose export failed. The pickle is verified before it is unpickled and
    stays the source of truth; only the runtime fields change, and every serving process
    picks the new runtime up at its next registry check. Raises ``artifacts.ArtifactError``
    or ``ModelUnusable`` when the pickle cannot be used.
    """
    estimator = artifacts.unpickle(artifacts.read_verified(version.artifact_path, version.sha256))
    export = fast_path_export(estimator, inspect_estimator(estimator))
    fields = onnx_runtime_fields(export, artifacts.version_dir(version.model.name, version.number))
    with transaction.atomic():
        lock_registry()
        ModelVersion.objects.filter(pk=version.pk).update(**fields)
    version.refresh_from_db()
    return version
