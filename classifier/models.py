"""The model registry (models, immutable versions, activations) and the prediction log."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.deconstruct import deconstructible

from core.encoding import FIELDS, RULES, SPECIES_NAMES

MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


@deconstructible
class FullMatchValidator(RegexValidator):
    """A RegexValidator that matches the whole value: ``$`` alone also matches before a final
    newline, so ``"knn\n"`` passed a ``search`` and made a model (and a folder) named so."""

    def __call__(self, value) -> None:
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ValidationError(self.message, code=self.code, params={"value": value})


model_name_validator = FullMatchValidator(
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
    challenger_version = models.ForeignKey(
        "ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Scores every prediction in shadow beside the active version; never answers.",
    )
    challenger_since = models.DateTimeField(null=True, blank=True)
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
    holdout = models.JSONField(
        default=dict,
        blank=True,
        help_text="The split: split seed, dataset fingerprint and the keys of the training and test rows.",
    )
    evaluation = models.JSONField(
        default=dict,
        blank=True,
        help_text="Paired comparison with the champion when registered: counts, McNemar p-value, decision.",
    )
    n_train = models.PositiveIntegerField(null=True, blank=True)
    n_test = models.PositiveIntegerField(null=True, blank=True)
    training_seconds = models.FloatField(null=True, blank=True)

    broken_reason = models.TextField(blank=True, help_text="Why this version cannot serve; empty when it can.")
    triggered_by = models.CharField(max_length=200, blank=True, help_text="Who or what created it.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    activation_note = models.TextField(blank=True, help_text="Why it was or was not activated when registered.")
    # What monitoring compares live traffic with: the training rows' feature values and class
    # counts (classifier.monitoring.reference); empty with reference_note saying why.
    reference = models.JSONField(default=dict, blank=True)
    reference_note = models.TextField(blank=True, help_text="Why the version has no reference profile.")
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
    evidence = models.JSONField(
        default=dict, blank=True, help_text="What the decision rested on: the paired evaluation or challenger stats."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The ledger of one model, newest first, and "what was live at <time>" (?at=).
            models.Index(fields=["model", "-created_at"], name="activation_model_created"),
        ]


class Prediction(models.Model):
    """One logged classification: written before its answer is sent."""

    class Endpoint(models.TextChoices):
        CLASSIFY = "classify", "POST /classify/<name>"
        PREDICT = "predict", "POST /api/v1/models/<name>/predict"
        INFER = "infer", "POST /v2/models/<name>/infer"

    id = models.BigAutoField(primary_key=True)
    # No single-column FK indexes: the (model, id) and (version, id) indexes below serve
    # every lookup by model or version, and each extra index slows every log insert.
    # ``model`` repeats the version's model for those indexes. Triggers keep the three keys
    # instead of foreign keys, which would look each row's parent up one by one
    # (classifier/log_rule.py): a row's version must exist and its model be the version's, a
    # version's id and model never change, and a version that rows name is not deleted.
    model = models.ForeignKey(
        MLModel, on_delete=models.PROTECT, related_name="predictions", db_index=False, db_constraint=False
    )
    version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="predictions", db_index=False, db_constraint=False
    )
    created_at = models.DateTimeField()
    endpoint = models.CharField(max_length=16, choices=Endpoint.choices)
    # The seven inputs, one typed column each (codes for island and sex), so monitoring reads
    # plain columns and a batch is copied as numbers rather than JSON text.
    island = models.PositiveSmallIntegerField()
    bill_length_mm = models.FloatField()
    bill_depth_mm = models.FloatField()
    flipper_length_mm = models.FloatField()
    body_mass_g = models.FloatField()
    sex = models.PositiveSmallIntegerField()
    year = models.PositiveSmallIntegerField()
    species_id = models.PositiveSmallIntegerField()
    # Each species' probability; NULL when the estimator gives none.
    proba_adelie = models.FloatField(null=True, blank=True)
    proba_chinstrap = models.FloatField(null=True, blank=True)
    proba_gentoo = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField()
    true_species_id = models.PositiveSmallIntegerField(null=True, blank=True)
    feedback_at = models.DateTimeField(null=True, blank=True)
    feedback_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # The challenger's answer to the same input (shadow traffic): stored, never returned.
    challenger_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    challenger_species_id = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The log's time-range filter (?created_after/before) and export --since.
            models.Index(fields=["created_at"], name="prediction_created"),
            # "Predictions of model X, newest first": list filter and admin filter by model. Read
            # backwards for newest first; ascending, a new row goes to the end of its model's
            # entries, where the index's pages fill up (descending, to their start, where each
            # page split leaves a half-empty page behind: 1.6 times the index for the same rows).
            models.Index(fields=["model", "id"], name="prediction_model_id"),
            # "Predictions of version N, newest first", and live accuracy per version.
            models.Index(fields=["version", "id"], name="prediction_version_id"),
            # "Predictions of species S, newest first".
            models.Index(fields=["species_id", "id"], name="prediction_species_id"),
            # Live accuracy per version (API version list/detail): only rows with feedback are
            # indexed, so the count reads a few index entries instead of every prediction.
            models.Index(
                fields=["version", "true_species_id", "species_id"],
                condition=Q(true_species_id__isnull=False),
                name="prediction_feedback",
            ),
            # Challenger statistics: the shadow rows of one challenger version (only those are indexed).
            models.Index(
                fields=["challenger_version", "id"],
                condition=Q(challenger_version__isnull=False),
                name="prediction_challenger",
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
            models.CheckConstraint(
                condition=Q(challenger_species_id__isnull=True) | Q(challenger_species_id__in=[1, 2, 3]),
                name="prediction_challenger_species_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"prediction {self.pk}"

    @property
    def inputs(self) -> dict[str, float | int]:
        """The inputs as the API and the export write them (codes as ints)."""
        return {field: _input_value(field, getattr(self, field)) for field in FIELDS}

    @inputs.setter
    def inputs(self, values: dict[str, float | int]) -> None:
        # ``Prediction(inputs={...})`` still works: the dict fills the seven columns.
        for field in FIELDS:
            setattr(self, field, values[field])

    @property
    def probabilities(self) -> dict[str, float] | None:
        values = [getattr(self, column) for column in PROBABILITY_COLUMNS]
        if all(value is None for value in values):
            return None
        return dict(zip(SPECIES_NAMES, values))

    @probabilities.setter
    def probabilities(self, values: dict[str, float] | None) -> None:
        for name, column in zip(SPECIES_NAMES, PROBABILITY_COLUMNS):
            setattr(self, column, None if values is None else values[name])


# The log's probability column of each species, in species-id order.
PROBABILITY_COLUMNS = tuple(f"proba_{name.lower()}" for name in SPECIES_NAMES)


def _input_value(field: str, value):
    return int(value) if RULES[field].integral else float(value)


class MonitoringReport(models.Model):
    """One stored monitoring check of a version: drift has a history, /metrics reads the latest."""

    class Verdict(models.TextChoices):
        DRIFT = "drift", "drift"
        NO_DRIFT = "no_drift", "no drift"
        NOT_ENOUGH_DATA = "not_enough_data", "not enough data"
        NO_REFERENCE = "no_reference", "no reference profile"

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="monitoring_reports")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="monitoring_reports")
    created_at = models.DateTimeField(auto_now_add=True)
    window_since = models.DateTimeField()
    window_until = models.DateTimeField()
    predictions = models.PositiveIntegerField()
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    dataset_drift = models.BooleanField(null=True)
    drift_share = models.FloatField(null=True)
    drifted_features = models.JSONField(default=list, blank=True)
    labelled = models.PositiveIntegerField(default=0)
    accuracy = models.FloatField(null=True)
    accuracy_low = models.FloatField(null=True)
    accuracy_high = models.FloatField(null=True)
    report = models.JSONField(default=dict, help_text="The whole report, as the monitoring API answered it.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # "Latest checks of version N" (history in the admin, /metrics' latest per version).
            models.Index(fields=["version", "-created_at"], name="monitoringreport_version"),
            # "Latest checks of model X" (admin badge, history page).
            models.Index(fields=["model", "-created_at"], name="monitoringreport_model"),
        ]

    def __str__(self) -> str:
        return f"{self.version} check {self.created_at:%Y-%m-%d %H:%M}: {self.verdict}"


class PredictionFeedback(models.Model):
    """Every true species recorded for a prediction, oldest first: a correction keeps the earlier answer.

    ``Prediction.true_species_id`` (with ``feedback_at``/``feedback_by``) holds the latest one,
    which live accuracy reads; this is the history behind it.
    """

    prediction = models.ForeignKey(Prediction, on_delete=models.CASCADE, related_name="feedback_history")
    true_species_id = models.PositiveSmallIntegerField()
    recorded_at = models.DateTimeField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        # A prediction's history in order (the index on prediction_id serves it).
        ordering = ["id"]

    def __str__(self) -> str:
        return f"feedback {self.true_species_id} on prediction {self.prediction_id}"
