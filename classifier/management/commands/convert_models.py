"""manage.py convert_models: export existing versions to ONNX (the fast serving path)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from classifier.artifacts import ArtifactError
from classifier.estimators import ModelUnusable
from classifier.models import ModelVersion
from classifier.services.registry import model_version_convert


class Command(BaseCommand):
    help = (
        "Export versions served by scikit-learn to ONNX, with the parity check training does: those "
        "registered before the fast path existed, or (--retry) those whose export failed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("names", nargs="*", help="Only these models (default: every model).")
        parser.add_argument("--retry", action="store_true", help="Also versions whose export failed before.")

    def handle(self, *args, names: list[str], retry: bool, **options) -> None:
        versions = ModelVersion.objects.select_related("model").filter(
            runtime=ModelVersion.Runtime.SKLEARN, broken_reason=""
        )
        if names:
            versions = versions.filter(model__name__in=names)
        if not retry:
            versions = versions.filter(runtime_reason="")
        failed = 0
        for version in versions.order_by("model__name", "number"):
            try:
                version = model_version_convert(version=version)
            except (ArtifactError, ModelUnusable) as exc:
                failed += 1
                self.stderr.write(f"{version}: cannot be read: {exc}")
                continue
            if version.runtime == ModelVersion.Runtime.ONNX:
                self.stdout.write(f"{version}: served by onnxruntime from {version.onnx_path}")
            else:
                self.stdout.write(f"{version}: stays on scikit-learn: {version.runtime_reason}")
        if failed:
            raise CommandError(f"{failed} version(s) could not be read; see above.")
