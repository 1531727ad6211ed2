"""Registry and files in step: the drop-in folder's pickles become versions, vanished files break theirs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import F

from core.hashing import sha256_bytes, sha256_file

from .. import artifacts, onnx_runtime
from ..estimators import ModelUnusable, inspect_estimator
from ..models import MLModel, ModelVersion, RegistryState
from .registry import fast_path_export, next_number, onnx_runtime_fields, set_active

MISSING_REASON = "the file was deleted from models/"


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    unchanged: int = 0
    ignored: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.broken or self.restored)


def drop_folder_fingerprint() -> tuple:
    """Cheap summary of the drop-in folder: names, sizes and modification times."""
    folder = artifacts.drop_dir()
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return ()
    result = []
    for path in entries:
        if path.name.endswith(artifacts.DROP_SUFFIX):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            result.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(result))


def _describe_file(data: bytes) -> tuple[dict[str, Any], str, onnx_runtime.Export | None]:
    """Metadata for a dropped-in file, or the reason it cannot serve; and its ONNX export."""
    try:
        obj = artifacts.unpickle(data)
        inspection = inspect_estimator(obj)
    except (artifacts.ArtifactError, ModelUnusable) as exc:
        return {}, str(exc), None
    estimator = inspection.estimator
    export = fast_path_export(obj, inspection)
    return (
        {
            "estimator": estimator,
            "algorithm": estimator.rsplit(".", 1)[-1].lower().removesuffix("classifier") or "unknown",
            "classes": inspection.classes,
            "class_values": [value.item() if hasattr(value, "item") else value for value in inspection.class_values],
            "feature_names": list(inspection.feature_names),
        },
        "",
        export,
    )


def registry_sync(*, actor: str = "sync") -> SyncReport:
    """Reconcile the registry with the files on disk.

    New or changed ``models/<name>_model.pkl`` files become discovered versions (active,
    or broken with the reason); a deleted one withdraws its version; a trained version
    whose file vanished is marked broken.
    """
    artifacts.ensure_dirs()
    report = SyncReport()
    files: dict[str, Path] = {}
    for path in sorted(artifacts.drop_dir().iterdir()):
        if not path.name.endswith(artifacts.DROP_SUFFIX) or not path.is_file():
            continue
        if artifacts.DROP_NAME.match(path.name):
            files[f"models/{path.name}"] = path
        else:
            report.ignored.append(path.name)

    with transaction.atomic():
        RegistryState.objects.get_or_create(id=1)
        RegistryState.objects.select_for_update().get(id=1)
        discovered: dict[str, list[ModelVersion]] = {}
        for version in ModelVersion.objects.filter(source=ModelVersion.Source.DISCOVERED).select_related("model"):
            discovered.setdefault(version.artifact_path, []).append(version)

        for relative_path, path in files.items():
            _sync_file(relative_path, path, discovered.get(relative_path, []), report, actor)

        for relative_path, versions in discovered.items():
            if relative_path in files:
                continue
            for version in versions:
                if version.broken_reason:
                    continue
                version.broken_reason = MISSING_REASON
                version.save(update_fields=["broken_reason"])
                model = version.model
                if model.active_version_id == version.pk:
                    set_active(model, None, user=None, actor=actor, reason=f"{relative_path} was deleted")
                report.removed.append(f"{model.name} v{version.number}")

        for version in ModelVersion.objects.filter(source=ModelVersion.Source.TRAINED, broken_reason="").select_related(
            "model"
        ):
            if not artifacts.is_file(version.artifact_path):
                version.broken_reason = missing_artifact_reason(version.artifact_path)
                version.save(update_fields=["broken_reason"])
                report.broken.append(f"{version.model.name} v{version.number}")
        _restore_reappeared_artifacts(report)

        if report.changed:
            RegistryState.objects.filter(id=1).update(generation=F("generation") + 1)
    return report


def missing_artifact_reason(relative_path: str) -> str:
    return f"artifact file {relative_path} is missing"


def _restore_reappeared_artifacts(report: SyncReport) -> None:
    """A trained version marked missing whose file is back, byte for byte, serves again.

    Covers an artifacts volume that was briefly unmounted or restored from a backup: the
    file must match the registry's sha256, so a different file never revives a version.
    """
    candidates = ModelVersion.objects.filter(source=ModelVersion.Source.TRAINED, broken_reason__endswith=" is missing")
    for version in candidates.select_related("model"):
        if version.broken_reason != missing_artifact_reason(version.artifact_path):
            continue
        if not artifacts.is_file(version.artifact_path):
            continue
        if sha256_file(artifacts.absolute(version.artifact_path)) != version.sha256:
            continue
        version.broken_reason = ""
        version.save(update_fields=["broken_reason"])
        report.restored.append(f"{version.model.name} v{version.number}")


def _sync_file(relative_path: str, path: Path, versions: list[ModelVersion], report: SyncReport, actor: str) -> None:
    stat = path.stat()
    latest = max(versions, key=lambda version: version.number, default=None)
    if latest and latest.size_bytes == stat.st_size and latest.file_mtime == stat.st_mtime:
        if latest.broken_reason != MISSING_REASON:
            report.unchanged += 1
            return
    data = path.read_bytes()
    sha = sha256_bytes(data)
    name = artifacts.DROP_NAME.match(path.name)["name"]
    same = next((version for version in versions if version.sha256 == sha), None)
    if same is not None:
        same.file_mtime = stat.st_mtime
        fields = ["file_mtime"]
        if same.broken_reason == MISSING_REASON:
            same.broken_reason = ""
            fields.append("broken_reason")
            set_active(same.model, same, user=None, actor=actor, reason=f"{relative_path} reappeared")
            report.restored.append(f"{name} v{same.number}")
        else:
            report.unchanged += 1
        same.save(update_fields=fields)
        return

    for version in versions:
        if not version.broken_reason:
            version.broken_reason = "the file in models/ was replaced by a newer version"
            version.save(update_fields=["broken_reason"])
    metadata, broken_reason, export = _describe_file(data)
    model, _ = MLModel.objects.get_or_create(name=name, defaults={"algorithm": metadata.get("algorithm", "")})
    number = next_number(model)
    # Dropped-in and legacy pickles are converted too; the ONNX file goes to the version's
    # own registry folder, never into models/ (the earlier service's folder).
    runtime_fields = onnx_runtime_fields(export, artifacts.version_dir(name, number)) if export is not None else {}
    version = ModelVersion.objects.create(
        model=model,
        number=number,
        source=ModelVersion.Source.DISCOVERED,
        algorithm=metadata.get("algorithm", ""),
        estimator=metadata.get("estimator", ""),
        artifact_path=relative_path,
        sha256=sha,
        size_bytes=len(data),
        file_mtime=stat.st_mtime,
        classes=metadata.get("classes", []),
        class_values=metadata.get("class_values", []),
        feature_names=metadata.get("feature_names", []),
        broken_reason=broken_reason,
        triggered_by=actor,
        activation_note="discovered in models/",
        **runtime_fields,
    )
    # The file in models/ is what the earlier service served: it becomes the active version,
    # broken or not, so that GET /models shows what is there and why it cannot serve.
    set_active(model, version, user=None, actor=actor, reason=f"{relative_path} discovered")
    (report.broken if broken_reason else report.added).append(f"{name} v{version.number}")
