"""Turning a registry version into something that answers, and keeping it loaded.

A version's pickle is read, checked against its sha256, unpickled once per process and
kept in a small LRU cache keyed by (version id, sha256). A version whose runtime is
``onnx`` loads its ONNX file instead (after the same check on both files) and answers
through onnxruntime; see ``classifier.onnx_runtime``. ``inspect_estimator`` decides how
a pickle is fed and how its classes map to the API's species ids:

- our pipelines take the seven fields (FIELDS) and predict the API's species ids;
- the earlier service's pickles take nine unnamed features (LEGACY_FEATURES) and predict
  ``penguins_v1.csv`` codes (1=Adelie, 2=Gentoo, 3=Chinstrap);
- a pipeline fitted on a DataFrame names its features; any subset of the known ones works;
- classes given as species names are matched by name.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings

from . import artifacts, metrics
from .encoding import (
    EXAMPLES,
    FIELDS,
    KNOWN_FEATURES,
    LEGACY_FEATURES,
    SPECIES,
    SPECIES_BY_NAME,
    V1_SPECIES,
    derived_features,
)
from .onnx_runtime import OnnxPredictor

logger = logging.getLogger(__name__)

SPECIES_IDS = np.array(sorted(SPECIES))
# One penguin of each species (Adelie, Chinstrap, Gentoo), in FIELDS order.
PROBE = np.array([[example[field] for field in FIELDS] for example in EXAMPLES.values()], dtype=np.float64)


class ModelUnusable(Exception):
    """The file is not a classifier this service can serve; the message says why."""


@dataclass(frozen=True)
class Inspection:
    feature_names: tuple[str, ...]
    named_features: bool  # fitted on a DataFrame: feed it one
    class_values: tuple[Any, ...]
    species_of_class: tuple[int, ...]  # API species id for each entry of classes_
    has_proba: bool
    estimator: str

    @property
    def classes(self) -> list[str]:
        return [SPECIES[code] for code in self.species_of_class]


def estimator_name(obj: Any) -> str:
    final = obj.steps[-1][1] if hasattr(obj, "steps") else obj
    return f"{type(final).__module__}.{type(final).__qualname__}"


def inspect_estimator(obj: Any) -> Inspection:
    """Check that ``obj`` is a fitted penguin classifier and learn how to call it."""
    if not callable(getattr(obj, "predict", None)):
        raise ModelUnusable(f"not a classifier: a {type(obj).__name__} has no predict()")
    try:
        class_values = tuple(obj.classes_)
    except Exception:
        raise ModelUnusable(f"not a fitted classifier: {type(obj).__name__} has no classes_") from None

    names = getattr(obj, "feature_names_in_", None)
    if names is not None:
        feature_names = tuple(str(name) for name in names)
        unknown = [name for name in feature_names if name not in KNOWN_FEATURES]
        if unknown:
            raise ModelUnusable(
                f"expects features this service does not provide: {', '.join(unknown)} "
                f"(known: {', '.join(LEGACY_FEATURES)})"
            )
        named = True
    else:
        count = getattr(obj, "n_features_in_", None)
        if count == len(FIELDS):
            feature_names = FIELDS
        elif count == len(LEGACY_FEATURES):
            feature_names = LEGACY_FEATURES
        else:
            raise ModelUnusable(
                f"expects {count} input features; this service provides {len(FIELDS)} "
                f"({', '.join(FIELDS)}) or the earlier service's {len(LEGACY_FEATURES)}"
            )
        named = False

    legacy = not named and feature_names == LEGACY_FEATURES
    species_of_class = tuple(_species_id(value, legacy) for value in class_values)
    inspection = Inspection(
        feature_names=feature_names,
        named_features=named,
        class_values=class_values,
        species_of_class=species_of_class,
        has_proba=callable(getattr(obj, "predict_proba", None)),
        estimator=estimator_name(obj),
    )
    try:
        predicted = call_estimator(obj, inspection, "predict", PROBE)
    except Exception as exc:
        raise ModelUnusable(f"predict() failed on a sample penguin ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not set(np.asarray(predicted).tolist()) <= set(class_values):
        raise ModelUnusable("predict() returned values outside its own classes_")
    return inspection


def _species_id(value: Any, legacy: bool) -> int:
    if isinstance(value, str):
        code = SPECIES_BY_NAME.get(value.strip().lower())
        if code is None:
            raise ModelUnusable(f"class {value!r} is not a penguin species ({', '.join(SPECIES.values())})")
        return code
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ModelUnusable(f"class {value!r} is neither a species name nor a species code") from None
    coding = V1_SPECIES if legacy else SPECIES
    if number != value or number not in coding:
        raise ModelUnusable(f"class {value!r} is not a species code (expected 1, 2 or 3)")
    return SPECIES_BY_NAME[coding[number].lower()]


def call_estimator(obj: Any, inspection: Inspection, method: str, matrix: np.ndarray) -> np.ndarray:
    """Call ``obj.<method>`` on parsed rows, fed the way ``inspection`` says it was fitted."""
    features = derived_features(matrix, inspection.feature_names)
    if inspection.named_features:
        features = pd.DataFrame(features, columns=list(inspection.feature_names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. version-mismatch warnings of old pickles
        return getattr(obj, method)(features)


@dataclass
class LoadedModel:
    """A version ready to answer: the estimator (or its ONNX session) and how to read its output.

    With ``onnx`` set the version is served by onnxruntime (``runtime == "onnx"``) and
    ``estimator`` is None: the pickle was verified but not unpickled.
    """

    version_id: int
    sha256: str
    estimator: Any
    inspection: Inspection
    onnx: OnnxPredictor | None = None

    def __post_init__(self) -> None:
        self._species_by_value = dict(zip(self.inspection.class_values, self.inspection.species_of_class))
        # Column k of predict_proba → column of the API's species order (1, 2, 3).
        self._proba_columns = [int(np.flatnonzero(SPECIES_IDS == code)[0]) for code in self.inspection.species_of_class]
        self._identity_columns = self._proba_columns == list(range(len(SPECIES_IDS)))

    @property
    def has_proba(self) -> bool:
        return self.inspection.has_proba

    @property
    def runtime(self) -> str:
        return "onnx" if self.onnx is not None else "sklearn"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Species ids (API coding) for each parsed row."""
        return self.predict_with_proba(matrix, with_proba=False)[0]

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Probabilities per row in the API's species order (Adelie, Chinstrap, Gentoo)."""
        if self.onnx is not None:
            return self.predict_with_proba(matrix, with_proba=True)[1]
        return self._species_order(call_estimator(self.estimator, self.inspection, "predict_proba", matrix))

    def predict_with_proba(self, matrix: np.ndarray, *, with_proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Species ids and (when asked) probabilities; one onnxruntime call gives both."""
        if self.onnx is not None:
            features = derived_features(matrix, self.inspection.feature_names)
            raw, raw_proba = self.onnx.run_raw(features, with_proba=with_proba)
            probabilities = self._species_order(raw_proba) if with_proba else None
        else:
            raw = call_estimator(self.estimator, self.inspection, "predict", matrix)
            probabilities = self.predict_proba(matrix) if with_proba else None
        return self._species_ids(raw), probabilities

    def _species_ids(self, raw: np.ndarray) -> np.ndarray:
        lookup = self._species_by_value
        return np.fromiter((lookup[value] for value in raw.tolist()), dtype=np.int64, count=len(raw))

    def _species_order(self, raw: np.ndarray) -> np.ndarray:
        if self._identity_columns:
            return np.asarray(raw, dtype=np.float64)
        result = np.zeros((len(raw), len(SPECIES_IDS)))
        result[:, self._proba_columns] = raw
        return result


class _LoadedCache:
    """Per-process LRU of loaded versions; nothing is unpickled per request."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[int, str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.loads = 0

    def get(self, key: tuple[int, str, str]) -> LoadedModel | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                self.hits += 1
                metrics.MODEL_CACHE_HITS.inc()
            return item

    def put(self, key: tuple[int, str, str], item: LoadedModel) -> None:
        with self._lock:
            self.loads += 1
            metrics.MODEL_CACHE_LOADS.inc()
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > settings.PENGUIN_MODEL_CACHE_SIZE:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


loaded_cache = _LoadedCache()


def load_version(
    *,
    version_id: int,
    artifact_path: str,
    sha256: str,
    runtime: str = "sklearn",
    onnx_path: str = "",
    onnx_sha256: str = "",
) -> LoadedModel:
    """The loaded model for a version; verifies the files' hashes before loading them.

    A version whose runtime is ``onnx`` is served from its ONNX file (checked against
    ``onnx_sha256``) without unpickling; its pickle, the source of truth, is still checked
    against ``sha256``. Raises ``artifacts.ArtifactError`` or ``ModelUnusable`` with a
    user-safe reason.
    """
    use_onnx = runtime == "onnx" and bool(onnx_path)
    key = (version_id, sha256, onnx_sha256 if use_onnx else "")
    cached = loaded_cache.get(key)
    if cached is not None:
        return cached
    started = time.perf_counter()
    data = artifacts.read_verified(artifact_path, sha256)
    loaded = _load_onnx(version_id, sha256, onnx_path, onnx_sha256) if use_onnx else None
    if loaded is None:
        estimator = artifacts.unpickle(data)
        loaded = LoadedModel(
            version_id=version_id, sha256=sha256, estimator=estimator, inspection=inspect_estimator(estimator)
        )
    loaded.load_seconds = time.perf_counter() - started  # type: ignore[attr-defined]
    loaded_cache.put(key, loaded)
    return loaded


def _load_onnx(version_id: int, sha256: str, onnx_path: str, onnx_sha256: str) -> LoadedModel | None:
    """The version served by onnxruntime, or None to fall back to its (verified) pickle.

    A file that does not match its hash is refused like a tampered pickle; a file that
    matches but will not load (it should not happen: it loaded when it was checked for
    parity) falls back to scikit-learn with a warning rather than failing the version.
    """
    data = artifacts.read_verified(onnx_path, onnx_sha256)
    try:
        predictor = OnnxPredictor(data)
    except Exception as exc:
        logger.warning("version %s: ONNX file %s does not load, serving the pickle: %s", version_id, onnx_path, exc)
        return None
    metadata = predictor.metadata
    if metadata is None:
        logger.warning("version %s: ONNX file %s has no serving metadata, serving the pickle", version_id, onnx_path)
        return None
    inspection = Inspection(
        feature_names=metadata.feature_names,
        named_features=False,
        class_values=metadata.class_values,
        species_of_class=metadata.species_of_class,
        has_proba=metadata.has_proba,
        estimator=metadata.estimator,
    )
    return LoadedModel(version_id=version_id, sha256=sha256, estimator=None, inspection=inspection, onnx=predictor)


def load_entry(entry: Any) -> LoadedModel:
    """``load_version`` for a ``selectors.ServingEntry`` (the registry's view of a version)."""
    return load_version(
        version_id=entry.version_id,
        artifact_path=entry.artifact_path,
        sha256=entry.sha256,
        runtime=entry.runtime,
        onnx_path=entry.onnx_path,
        onnx_sha256=entry.onnx_sha256,
    )
