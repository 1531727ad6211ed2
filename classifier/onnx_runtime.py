"""The fast serving path: a version's estimator exported to ONNX and run by onnxruntime.

The joblib pickle stays the source of truth. When a version is registered (trained here,
dropped into ``models/`` or found there from the earlier service), ``onnx_export``
converts the fitted estimator with skl2onnx and checks **parity on the whole dataset**
(``PENGUIN_DATA_PATH``): every row must get the same class, and every probability must be
within ``PARITY_ATOL`` of scikit-learn's. Only then is the ONNX file stored (``model.onnx``
beside the pickle, with its own sha256) and the version served by onnxruntime; otherwise
the version is served by scikit-learn and the reason is recorded (``runtime_reason``).

Two conversions are tried, in order:

1. the estimator as it is, in double precision;
2. the same with a cast to float32 before the final estimator. scikit-learn's trees
   (random forest, gradient boosting, ...) compare float32 features against their
   thresholds; without the cast, a value that rounds across a threshold lands in another
   leaf, so probabilities differ by up to a whole tree's vote (0.09 for the default forest).

The ONNX file carries what serving needs to read its output (feature names, class values,
their species ids, whether it estimates probabilities) in its metadata, so a serving
process answers from it without unpickling the estimator.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from core.datasets import dataset_load
from core.encoding import derived_features

from .estimators import call_estimator

PARITY_ATOL = 1e-5
INPUT_NAME = "input"
METADATA_KEY = "penguin.serving"
FILE_NAME = "model.onnx"


@dataclass(frozen=True)
class Export:
    """The outcome of converting one estimator: the ONNX bytes, or why there are none."""

    data: bytes | None
    reason: str = ""
    variant: str = ""
    max_probability_difference: float | None = None

    @property
    def ok(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class ServingMetadata:
    """How to feed an ONNX model and read its output, stored inside the file."""

    feature_names: tuple[str, ...]
    class_values: tuple[Any, ...]
    species_of_class: tuple[int, ...]
    has_proba: bool
    estimator: str
    variant: str


# --- parity data ------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _dataset_features(path: str, mtime_ns: int, size: int) -> np.ndarray:
    return dataset_load(path).features()


def parity_features() -> np.ndarray:
    """The seven parsed fields of every clean row of ``PENGUIN_DATA_PATH`` (cached per file).

    Raises ``FileNotFoundError``/``ValueError`` when the file cannot be read.
    """
    path = Path(settings.PENGUIN_DATA_PATH)
    stat = path.stat()
    return _dataset_features(str(path), stat.st_mtime_ns, stat.st_size)


# --- export -------------------------------------------------------------------------------------


def _final_estimator(estimator: Any) -> Any:
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


def _with_float32_cast(estimator: Any, features: np.ndarray) -> Any:
    """The same model with a cast to float32 right before its final estimator."""
    from skl2onnx.sklapi import CastTransformer
    from sklearn.pipeline import Pipeline

    steps = list(estimator.steps) if hasattr(estimator, "steps") else [("estimator", estimator)]
    head = steps[:-1]
    transformed = Pipeline(head).transform(features) if head else features
    cast = CastTransformer(dtype=np.float32).fit(transformed)
    return Pipeline([*head, ("cast_float32", cast), steps[-1]])


def _convert(estimator: Any, n_features: int) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    final = _final_estimator(estimator)
    converter_options: dict[str, Any] = {"zipmap": False}  # probabilities as one tensor, not a list of dicts
    if type(final).__name__ == "KNeighborsClassifier":
        # onnxruntime's CDist operator instead of the default loop over training points: 25× faster.
        converter_options["optim"] = "cdist"
    options = {id(final): converter_options}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = convert_sklearn(
            estimator,
            initial_types=[(INPUT_NAME, DoubleTensorType([None, n_features]))],
            options=options,
        )
    return model.SerializeToString()


def _with_metadata(data: bytes, metadata: ServingMetadata) -> bytes:
    import onnx

    model = onnx.load_from_string(data)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(
        {
            "feature_names": list(metadata.feature_names),
            "class_values": [_plain(value) for value in metadata.class_values],
            "species_of_class": list(metadata.species_of_class),
            "has_proba": metadata.has_proba,
            "estimator": metadata.estimator,
            "variant": metadata.variant,
        }
    )
    return model.SerializeToString()


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _parity(predictor: OnnxPredictor, estimator: Any, inspection: Any, matrix: np.ndarray) -> tuple[str, float | None]:
    """An empty string when ONNX and scikit-learn agree on every row, else what differs."""
    expected = np.asarray(call_estimator(estimator, inspection, "predict", matrix))
    labels, probabilities = predictor.run_raw(_features(inspection, matrix), with_proba=inspection.has_proba)
    differing = int(np.sum(np.asarray(labels).astype(object) != expected.astype(object)))
    if differing:
        return f"parity check failed: {differing} of {len(matrix)} dataset rows get a different class", None
    if not inspection.has_proba:
        return "", None
    expected_proba = np.asarray(call_estimator(estimator, inspection, "predict_proba", matrix), dtype=np.float64)
    if probabilities is None or probabilities.shape != expected_proba.shape:
        return "parity check failed: the ONNX model gives no probabilities of the expected shape", None
    difference = float(np.max(np.abs(probabilities - expected_proba))) if len(matrix) else 0.0
    if not difference <= PARITY_ATOL:
        return (
            f"parity check failed: probabilities differ by up to {difference:.2g} "
            f"(allowed {PARITY_ATOL:g}) on the {len(matrix)} dataset rows"
        ), difference
    return "", difference


def onnx_export(estimator: Any, inspection: Any) -> Export:
    """Convert ``estimator`` to ONNX and check parity with it on the whole dataset.

    Never raises for a model it cannot handle: the returned ``Export`` then has no data and
    a ``reason`` a user can read (which converter failed, or which rows differ).
    """
    try:
        matrix = parity_features()
    except Exception as exc:  # a missing or malformed data file must not stop a registration
        return Export(None, f"no data to check parity with ({settings.PENGUIN_DATA_PATH}: {str(exc)[:200]})")
    features = _features(inspection, matrix)
    candidates = (
        ("double", lambda: estimator),
        ("float32 cast before the estimator", lambda: _with_float32_cast(estimator, features)),
    )
    reasons: list[str] = []
    for variant, build in candidates:
        metadata = ServingMetadata(
            feature_names=tuple(inspection.feature_names),
            class_values=tuple(inspection.class_values),
            species_of_class=tuple(inspection.species_of_class),
            has_proba=inspection.has_proba,
            estimator=inspection.estimator,
            variant=variant,
        )
        try:
            data = _with_metadata(_convert(build(), features.shape[1]), metadata)
            mismatch, difference = _parity(OnnxPredictor(data), estimator, inspection, matrix)
        except Exception as exc:  # skl2onnx and onnxruntime raise many kinds for unsupported models
            reasons.append(f"{variant}: {_describe_error(exc)}")
            continue
        if not mismatch:
            return Export(data, "", variant, difference)
        reasons.append(f"{variant}: {mismatch}")
    return Export(None, "no ONNX conversion matches scikit-learn (" + "; ".join(reasons) + ")")


def _features(inspection: Any, matrix: np.ndarray) -> np.ndarray:
    return derived_features(matrix, inspection.feature_names)


def _describe_error(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:240]}"


# --- serving ------------------------------------------------------------------------------------


def session_options() -> Any:
    """One thread per session: gunicorn already runs one worker process per core or more,
    and onnxruntime's default (a thread pool per session, spinning while idle) would make
    the workers' threads fight for the same cores."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


# A large batch to a tree ensemble is cut into blocks of about SPLIT_MIN_ROWS rows (from twice
# that), which several threads run at once on one session (onnxruntime releases the GIL). Each
# row's answer stays the same, bit for bit: it is still computed by one thread, tree after tree
# in the same order, whatever rows share its block (onnxruntime's own threads would add the
# trees up in another order). Only graphs made of these operators are cut: a matrix product
# (logistic regression, SVM, k-NN distances) may round a row's last bit differently with the
# block's size.
ROW_BY_ROW_OPERATORS = frozenset(
    {
        ("", "Cast"),
        ("", "Identity"),
        ("", "Add"),
        ("", "Sub"),
        ("", "Mul"),
        ("", "Div"),
        ("ai.onnx.ml", "TreeEnsembleClassifier"),
        ("ai.onnx.ml", "TreeEnsembleRegressor"),
    }
)
SPLIT_MIN_ROWS = 1_000
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _split_pool(threads: int) -> ThreadPoolExecutor:
    """This process's threads that help with large batches (made after a fork, never shared)."""
    key = (os.getpid(), threads)
    pool = _pools.get(key)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(key)
            if pool is None:
                for stale in [other for other in _pools if other[0] != key[0]]:
                    del _pools[stale]  # a parent's pool: its threads did not survive the fork
                pool = _pools[key] = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="onnx-rows")
    return pool


def _operators(data: bytes) -> set[tuple[str, str]]:
    """The (domain, operator) pairs of a model's graph."""
    import onnx

    return {(node.domain, node.op_type) for node in onnx.load_from_string(data).graph.node}


class OnnxPredictor:
    """An onnxruntime session for one ONNX file, and how to read its output."""

    def __init__(self, data: bytes):
        import onnxruntime

        self.session = onnxruntime.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
        self._data = data  # read again for its operators on the first large batch
        self._row_by_row: bool | None = None
        outputs = [output.name for output in self.session.get_outputs()]
        self._label_output = outputs[0]
        self._proba_output = outputs[1] if len(outputs) > 1 else None
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self.metadata: ServingMetadata | None = None
        if raw:
            values = json.loads(raw)
            self.metadata = ServingMetadata(
                feature_names=tuple(values["feature_names"]),
                class_values=tuple(values["class_values"]),
                species_of_class=tuple(values["species_of_class"]),
                has_proba=bool(values["has_proba"]),
                estimator=values.get("estimator", ""),
                variant=values.get("variant", ""),
            )

    @property
    def row_by_row(self) -> bool:
        """Whether each row is computed on its own (a batch may be cut into blocks). Read on the
        first large batch, not at load: the onnx package costs a worker 11 MB."""
        if self._row_by_row is None:
            self._row_by_row = _operators(self._data) <= ROW_BY_ROW_OPERATORS
            self._data = b""  # read once
        return self._row_by_row

    def run_raw(self, features: np.ndarray, *, with_proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Class values (as the estimator's ``predict``) and probabilities (``predict_proba``).

        ``features`` are the estimator's own input columns (see ``derived_features``).
        """
        wanted = [self._label_output]
        if with_proba and self._proba_output is not None:
            wanted.append(self._proba_output)
        features = np.ascontiguousarray(features, dtype=np.float64)
        threads = settings.PENGUIN_PREDICT_THREADS
        if threads < 2 or len(features) < 2 * SPLIT_MIN_ROWS or not self.row_by_row:
            result = self.session.run(wanted, {INPUT_NAME: features})
        else:
            result = self._run_blocks(wanted, np.array_split(features, len(features) // SPLIT_MIN_ROWS), threads)
        probabilities = np.asarray(result[1], dtype=np.float64) if len(result) > 1 else None
        return np.asarray(result[0]), probabilities

    def _run_blocks(self, wanted: list[str], blocks: list[np.ndarray], threads: int) -> list[np.ndarray]:
        """The blocks' outputs, joined in order. This thread and up to ``threads - 1`` of the pool's
        take the blocks one at a time until none is left. A pool thread busy with another batch
        helps once it is free, and this thread never waits for one that has not started: so
        batches that meet share the threads, and no core idles while a block is left."""
        parts: list = [None] * len(blocks)
        order = itertools.count()  # next() on it is atomic: each block is taken once

        def take() -> None:
            while (index := next(order)) < len(blocks):
                parts[index] = self.session.run(wanted, {INPUT_NAME: blocks[index]})

        pool = _split_pool(threads)
        helpers = [pool.submit(take) for _ in range(threads - 1)]
        take()
        for helper in helpers:
            if not helper.cancel():  # started: it is finishing a block of this batch
                helper.result()
        return [np.concatenate([part[index] for part in parts]) for index in range(len(wanted))]
