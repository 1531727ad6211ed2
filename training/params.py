"""The estimator parameters a training request may set: one JSON schema per algorithm.

Each schema is derived from scikit-learn's own parameter constraints
(``_parameter_constraints``), keeping the kinds of value JSON can carry (numbers in an
interval, booleans, named options, null) and dropping those it cannot (callables, arrays,
estimator objects). ``params_check`` enforces exactly that schema, and the OpenAPI
schema publishes it (``document_training_params``), so what the API documents and what
it accepts are the same thing. scikit-learn validates again when the pipeline is built.
"""

from __future__ import annotations

import math
import numbers
from functools import cache
from pathlib import Path
from typing import Any

from sklearn.utils._param_validation import Hidden, Interval, Options, RealNotInt, StrOptions

from .catalogue import CATALOGUE, ParamError

_NULL = object()  # marks "null is accepted" among a parameter's options

# Parameters that count training rows. Above the dataset's rows they cannot make sense, and
# some cost without bound (a forest's max_samples draws that many rows for every tree): the
# schema caps them at the configured dataset's rows, and a share of the rows at 1.0.
ROW_COUNTS = frozenset({"max_samples", "min_samples_leaf", "min_samples_split", "n_neighbors"})


def _interval(interval: Interval) -> dict[str, Any]:
    integral = interval.type is numbers.Integral
    schema: dict[str, Any] = {"type": "integer" if integral else "number"}
    if interval.type is RealNotInt:
        # scikit-learn tells 1 (a count) from 1.0 (a share) by the number's type; so does
        # JSON (as OpenAPI 3.0 reads it): a share is written with a decimal point.
        schema["not"] = {"type": "integer"}
    if interval.left is not None and math.isfinite(interval.left):
        schema["minimum"] = interval.left
        if interval.closed in {"right", "neither"}:
            schema["exclusiveMinimum"] = True
    if interval.right is not None and math.isfinite(interval.right):
        schema["maximum"] = interval.right
        if interval.closed in {"left", "neither"}:
            schema["exclusiveMaximum"] = True
    return schema


def _options(constraint: Any) -> list[Any]:
    """JSON schemas for one sklearn constraint (empty when JSON cannot express it)."""
    if constraint is None:
        return [_NULL]
    if isinstance(constraint, Hidden):
        return []
    if isinstance(constraint, Interval):
        return [_interval(constraint)]
    if isinstance(constraint, StrOptions):
        return [{"type": "string", "enum": sorted(constraint.options)}]
    if isinstance(constraint, Options):
        return [{"enum": sorted(constraint.options, key=repr)}]
    if constraint == "boolean":
        return [{"type": "boolean"}]
    if constraint == "random_state":
        return [{"type": "integer", "minimum": 0, "maximum": 2**32 - 1}, _NULL]
    if constraint == "verbose":
        return [{"type": "integer", "minimum": 0}, {"type": "boolean"}]
    if constraint is numbers.Integral:
        return [{"type": "integer"}]
    if constraint is numbers.Real:
        return [{"type": "number"}]
    return []  # callables, arrays, dicts, estimators: not settable through the API


def _within_rows(schema: dict[str, Any], rows: int) -> dict[str, Any]:
    if "anyOf" in schema:
        return {**schema, "anyOf": [_within_rows(option, rows) for option in schema["anyOf"]]}
    if schema.get("type") == "integer":
        return {**schema, "maximum": min(schema.get("maximum", rows), rows), "exclusiveMaximum": False}
    if schema.get("type") == "number" and "not" in schema and "maximum" not in schema:
        return {**schema, "maximum": 1.0}
    return schema


@cache
def param_schemas(algorithm: str, rows: int | None = None) -> dict[str, dict[str, Any]]:
    """Parameter name → JSON schema (OpenAPI 3.0 flavour) of the values a request may give.

    ``rows``: the training dataset's rows, which bound the parameters that count rows.
    """
    constraints = CATALOGUE[algorithm].estimator_class._parameter_constraints
    schemas: dict[str, dict[str, Any]] = {}
    for name, options in sorted(constraints.items()):
        found = [schema for constraint in options for schema in _options(constraint)]
        values = [schema for schema in found if schema is not _NULL]
        if not values:
            continue  # nothing but null: leave the default
        if _NULL in found:
            values = [_nullable(schema) for schema in values]
        schemas[name] = values[0] if len(values) == 1 else {"anyOf": values}
        if rows is not None and name in ROW_COUNTS:
            schemas[name] = _within_rows(schemas[name], rows)
    return schemas


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0 spelling of "or null": ``nullable`` beside ``type``, and null in an ``enum``."""
    schema = {**schema, "nullable": True}
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _matches(schema: dict[str, Any], value: Any) -> bool:
    if "anyOf" in schema:
        return any(_matches(option, value) for option in schema["anyOf"])
    if value is None:
        return bool(schema.get("nullable"))
    if "enum" in schema and value not in schema["enum"]:
        return False
    kind = schema.get("type")
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind in {"integer", "number"}:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if kind == "integer" and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if "not" in schema and not isinstance(value, float):
            return False
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and (value < low or (schema.get("exclusiveMinimum") and value == low)):
            return False
        if high is not None and (value > high or (schema.get("exclusiveMaximum") and value == high)):
            return False
        return True
    return "enum" in schema


def _describe(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        described = " or ".join(_describe({**option, "nullable": False}) for option in schema["anyOf"])
        return described + (" or null" if any(option.get("nullable") for option in schema["anyOf"]) else "")
    if schema.get("nullable"):
        return _describe({**schema, "nullable": False}) + " or null"
    if "enum" in schema:
        return "one of " + ", ".join(repr(option) for option in schema["enum"] if option is not None)
    kind = {"integer": "a whole number", "number": "a number", "boolean": "true or false"}.get(schema["type"], "text")
    if "not" in schema:
        kind = "a share written with a decimal point"
    bounds = []
    if "minimum" in schema:
        bounds.append(f"{'>' if schema.get('exclusiveMinimum') else '>='} {schema['minimum']:g}")
    if "maximum" in schema:
        bounds.append(f"{'<' if schema.get('exclusiveMaximum') else '<='} {schema['maximum']:g}")
    return kind + (f" {' and '.join(bounds)}" if bounds else "")


def params_check(*, algorithm: str, params: dict[str, Any], rows: int | None = None) -> None:
    """Refuse a value the published schema does not allow; raises ParamError naming the parameter.

    ``rows`` (the dataset's) bounds the parameters that count rows. Names the estimator
    does not have are left to ``Algorithm.build``, which lists the ones it has.
    """
    schemas = param_schemas(algorithm, rows)
    accepted = CATALOGUE[algorithm].estimator_class().get_params()
    for name, value in params.items():
        if name not in accepted:
            continue
        schema = schemas.get(name)
        if schema is None:
            raise ParamError(name, f"{algorithm} parameter {name!r} cannot be set through a training request.")
        if not _matches(schema, value):
            why = f" (the dataset has {rows} rows)" if rows is not None and name in ROW_COUNTS else ""
            raise ParamError(
                name, f"{algorithm} parameter {name!r} must be {_describe(schema)}{why}; got {value!r:.60}."
            )


def dataset_rows(path: str | Path | None = None) -> int | None:
    """Rows the training dataset (by default the configured one) holds; None if it cannot be read."""
    from django.conf import settings

    from core.datasets import DatasetError, dataset_load

    try:
        return dataset_load(path or settings.PENGUIN_DATA_PATH).rows_used
    except (DatasetError, OSError):
        return None


def document_training_params(result, generator, request, public):
    """drf-spectacular postprocessing hook: publish each algorithm's parameters.

    The training-run request becomes one schema per algorithm (``oneOf``), each naming its
    algorithm and the parameters it accepts; no other parameter is accepted.
    """
    components = result.get("components", {}).get("schemas", {})
    base = components.get("TrainingRunCreateRequest")
    if base is None:
        return result
    rows = dataset_rows()
    variants = []
    for algorithm in CATALOGUE:
        properties = {
            **base["properties"],
            "algorithm": {"type": "string", "enum": [algorithm]},
            "params": {
                "type": "object",
                "properties": param_schemas(algorithm, rows),
                "additionalProperties": False,
                "description": f"{algorithm} estimator parameters (scikit-learn names).",
            },
        }
        variants.append({**base, "title": algorithm, "properties": properties})
    components["TrainingRunCreateRequest"] = {"oneOf": variants, "description": base.get("description", "")}
    return result
