"""The model registry (models, immutable versions, activations) and the prediction log."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
model_name_validator = RegexValidator(
    MODEL_NAME_PATTERN,
    "Use 1-64 lower-case letters, digits, '_' or '-', starting with a letter or digit.",
)


class RegistryState(models.Model):
    """A single row whose ``generation`` grows with every registry change.

    Each serving process remembers the generation it loaded and re-reads the registry
    only when it moved, so a version activated in one worker serves in all of them.
    Registry writes also lock this row, which serialises version numbering.
    """

    generation = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="registrystate_single_row")]


class MLModel(models.Model):
    """A named model; what ``/classify/<name>`` serves is its active version."""

    name = models.CharField(max_length=64, unique=True, validators=[model_name_validator])
    algorithm = models.CharField(max_length=64, blank=True, help_text="Catalogue name; blank for discovered files.")
    description = models.TextField(blank=True)
    active_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "model"

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """One immutable trained (or discovered) artifact of a model."""

    class Source(models.TextChoices):
        TRAINED = "trained", "trained here"
        DISCOVERED = "discovered", "discovered on disk"

    class Runtime(models.TextChoices):
        SKLEARN = "sklearn", "scikit-learn"
        ONNX = "onnx", "ONNX Runtime"

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.TRAINED)
    algorithm = models.CharField(max_length=64, blank=True)
    estimator = models.CharField(max_length=200, blank=True, help_text="Python class of the final estimator.")

    artifact_path = models.CharField(max_length=500, help_text="Relative to PENGUIN_ARTIFACTS_DIR.")
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    file_mtime = models.FloatField(null=True, blank=True)
    onnx_path = models.CharField(max_length=500, blank=True)
    onnx_sha256 = models.CharField(max_length=64, blank=True)
    runtime = models.CharField(max_length=16, choices=Runtime.choices, default=Runtime.SKLEARN)
    runtime_reason = models.TextField(blank=True, help_text="Why the fast runtime is not used, if it is not.")

    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    classification_report = models.JSONField(default=dict, blank=True)
    confusion_matrix = models.JSONField(default=dict, blank=True)
    confusion_matrix_path = models.CharField(max_length=500, blank=True)
    # Species names in the order of the estimator's classes_, and the raw class values.
    classes = models.JSONField(default=list, blank=True)
    class_values = models.JSONField(default=list, blank=True)
    feature_names = models.JSONField(default=list, blank=True)
    library_versions = models.JSONField(default=dict, blank=True)
    dataset = models.JSONField(default=dict, blank=True, help_text="Path, sha256 and row counts of the training data.")
    n_train = models.PositiveIntegerField(null=True, blank=True)
    n_test = models.PositiveIntegerField(null=True, blank=True)
    training_seconds = models.FloatField(null=True, blank=True)

    broken_reason = models.TextField(blank=True, help_text="Why this version cannot serve; empty when it can.")
    triggered_by = models.CharField(max_length=200, blank=True, help_text="Who or what created it.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    activation_note = models.TextField(blank=True, help_text="Why it was or was not activated when registered.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model__name", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="modelversion_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"

    @property
    def status(self) -> str:
        if self.broken_reason:
            return "broken"
        return "active" if self.model.active_version_id == self.pk else "inactive"


class ModelActivation(models.Model):
    """Audit trail: which version became active, when, by whom and why."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="activations")
    version = models.ForeignKey(ModelVersion, null=True, on_delete=models.SET_NULL, related_name="activations")
    previous_version = models.ForeignKey(ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    activated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class Prediction(models.Model):
    """One logged classification: written before its answer is sent."""

    class Endpoint(models.TextChoices):
        CLASSIFY = "classify", "POST /classify/<name>"
        PREDICT = "predict", "POST /api/v1/models/<name>/predict"

    id = models.BigAutoField(primary_key=True)
    # No single-column FK indexes: the (model, -id) and (version, -id) indexes below serve
    # every lookup by model or version, and each extra index slows every log insert.
    model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="predictions", db_index=False)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions", db_index=False)
    created_at = models.DateTimeField()
    endpoint = models.CharField(max_length=16, choices=Endpoint.choices)
    inputs = models.JSONField()
    species_id = models.PositiveSmallIntegerField()
    probabilities = models.JSONField(null=True, blank=True)
    latency_ms = models.FloatField()
    true_species_id = models.PositiveSmallIntegerField(null=True, blank=True)
    feedback_at = models.DateTimeField(null=True, blank=True)
    feedback_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The log's time-range filter (?created_after/before) and export --since.
            models.Index(fields=["created_at"], name="prediction_created"),
            # "Predictions of model X, newest first": list filter and admin filter by model.
            models.Index(fields=["model", "-id"], name="prediction_model_id"),
            # "Predictions of version N, newest first", and live accuracy per version.
            models.Index(fields=["version", "-id"], name="prediction_version_id"),
            # "Predictions of species S, newest first".
            models.Index(fields=["species_id", "-id"], name="prediction_species_id"),
            # Live accuracy per version (API version list/detail): only rows with feedback are
            # indexed, so the count reads a few index entries instead of every prediction.
            models.Index(
                fields=["version", "true_species_id", "species_id"],
                condition=Q(true_species_id__isnull=False),
                name="prediction_feedback",
            ),
            # Deleting a user sets their feedback_by to NULL; only rows with feedback are indexed.
            models.Index(fields=["feedback_by"], condition=Q(feedback_by__isnull=False), name="prediction_feedback_by"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(species_id__in=[1, 2, 3]), name="prediction_species_valid"),
            models.CheckConstraint(
                condition=Q(true_species_id__isnull=True) | Q(true_species_id__in=[1, 2, 3]),
                name="prediction_true_species_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"prediction {self.pk}"
