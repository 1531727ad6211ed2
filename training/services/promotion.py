"""What a finished training hands to the registry, and whether the new version serves."""

from __future__ import annotations

import io
import platform

from django.conf import settings

from classifier.estimators import estimator_name
from classifier.models import MLModel
from classifier.services.registry import NewVersion

from ..models import ActivationMode
from ..trainer import TrainingResult


def library_versions() -> dict[str, str]:
    import joblib
    import numpy
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "joblib": joblib.__version__,
    }


def confusion_matrix_png(result: TrainingResult, title: str) -> bytes:
    """A picture of the test-set confusion matrix, for the admin."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = result.confusion_matrix["labels"]
    matrix = result.confusion_matrix["matrix"]
    figure = Figure(figsize=(4.2, 3.6), dpi=100)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    axes.set_xticks(range(len(labels)), labels=labels)
    axes.set_yticks(range(len(labels)), labels=labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            axes.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def new_version_info(result: TrainingResult, *, extra_files: dict[str, bytes] | None = None) -> NewVersion:
    """What the registry stores about a trained pipeline, besides the file itself."""
    return NewVersion(
        algorithm=result.algorithm,
        params=result.estimator_params,
        metrics=result.metrics,
        classification_report=result.classification_report,
        confusion_matrix=result.confusion_matrix,
        classes=result.classes,
        class_values=result.class_values,
        feature_names=result.feature_names,
        dataset={**result.dataset, "test_size": result.test_size, "seed": result.seed},
        n_train=result.n_train,
        n_test=result.n_test,
        training_seconds=result.seconds,
        library_versions=library_versions(),
        estimator=estimator_name(result.pipeline),
        extra_files=extra_files or {},
    )


def promotion_decision(*, model_name: str, metrics: dict[str, float], mode: str) -> tuple[bool, str]:
    """Whether a new version becomes active, and why.

    ``force`` always activates, ``never`` never does; by policy a version is activated
    unless its test F1 is below the active version's by more than PENGUIN_PROMOTION_MARGIN.
    """
    if mode == ActivationMode.FORCE:
        return True, "activated: forced"
    if mode == ActivationMode.NEVER:
        return False, "not activated: requested with --no-activate"
    model = MLModel.objects.select_related("active_version").filter(name=model_name).first()
    active = model.active_version if model else None
    if active is None or active.broken_reason:
        return True, "activated: no serving version before it"
    new_f1 = metrics.get("test_f1")
    old_f1 = (active.metrics or {}).get("test_f1")
    if new_f1 is None or old_f1 is None:
        return True, f"activated: v{active.number} has no test F1 to compare with"
    margin = settings.PENGUIN_PROMOTION_MARGIN
    if new_f1 < old_f1 - margin:
        return False, (
            f"not activated: test F1 {new_f1:.4f} is worse than active v{active.number}'s {old_f1:.4f} "
            f"by more than the margin {margin:g} (PENGUIN_PROMOTION_MARGIN)"
        )
    return True, f"activated: test F1 {new_f1:.4f} vs v{active.number}'s {old_f1:.4f} (margin {margin:g})"
