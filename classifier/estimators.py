"""What a fitted estimator is and how to call it: the checks every model file passes.

``inspect_estimator`` decides how a pickle is fed and how its classes map to the API's
species ids:

- our pipelines take the seven fields (FIELDS) and predict the API's species ids;
- the earlier service's pickles take nine unnamed features (LEGACY_FEATURES) and predict
  ``penguins_v1.csv`` codes (1=Adelie, 2=Gentoo, 3=Chinstrap);
- a pipeline fitted on a DataFrame names its features; any subset of the known ones works;
- classes given as species names are matched by name.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.encoding import (
    EXAMPLES,
    FIELDS,
    KNOWN_FEATURES,
    LEGACY_FEATURES,
    SPECIES,
    SPECIES_BY_NAME,
    V1_SPECIES,
    derived_features,
)

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
