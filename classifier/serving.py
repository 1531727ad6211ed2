"""Turning a registry version into something that answers, and keeping it loaded.

A version's pickle is read, checked against its sha256, unpickled once per process and
kept in a small LRU cache keyed by (version id, sha256). A version whose runtime is
``onnx`` loads its ONNX file instead (after the same check on both files) and answers
through onnxruntime; see ``classifier.onnx_runtime``. ``classifier.estimators`` decides
how a pickle is fed and how its classes map to the API's species ids.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from core.encoding import SPECIES_IDS, derived_features

from . import artifacts, metrics
from .estimators import Inspection, call_estimator, inspect_estimator
from .onnx_runtime import OnnxPredictor

logger = logging.getLogger(__name__)

# The API's species ids in probability-column order.
PROBA_ORDER = np.array(SPECIES_IDS)


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
        self._proba_columns = [int(np.flatnonzero(PROBA_ORDER == code)[0]) for code in self.inspection.species_of_class]
        self._identity_columns = self._proba_columns == list(range(len(PROBA_ORDER)))

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
        result = np.zeros((len(raw), len(PROBA_ORDER)))
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
