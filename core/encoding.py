"""The API's data encoding and the one parser every door uses for penguin inputs.

API encoding: island 1=Torgersen, 2=Biscoe, 3=Dream; sex 0=female, 1=male;
species 1=Adelie, 2=Chinstrap, 3=Gentoo. Island and sex may also be given by name, in any
case. All seven fields are required.

``parse_rows`` validates and converts any number of rows column by column with numpy, so a
10,000-row batch costs a few list passes rather than 70,000 serializer calls. A single
penguin is a batch of one: the rules live in one place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

SPECIES: dict[int, str] = {1: "Adelie", 2: "Chinstrap", 3: "Gentoo"}
SPECIES_BY_NAME: dict[str, int] = {name.lower(): code for code, name in SPECIES.items()}
# The species in id order (1, 2, 3): the columns of every probability row the API answers.
SPECIES_IDS: tuple[int, ...] = tuple(sorted(SPECIES))
SPECIES_NAMES: tuple[str, ...] = tuple(SPECIES[code] for code in SPECIES_IDS)
ISLANDS: dict[int, str] = {1: "Torgersen", 2: "Biscoe", 3: "Dream"}
SEXES: dict[int, str] = {0: "female", 1: "male"}

# The earlier project's coded file (penguins_v1.csv) and its pickles: 2=Gentoo, 3=Chinstrap.
V1_SPECIES: dict[int, str] = {1: "Adelie", 2: "Gentoo", 3: "Chinstrap"}

# The seven input fields, in the order models receive them.
FIELDS: tuple[str, ...] = (
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
)
# The earlier service's pickles take these nine unnamed features.
LEGACY_FEATURES: tuple[str, ...] = (*FIELDS, "bill_ratio", "body_mass_kg")

MAX_ERRORS = 50

# One known penguin of each species from data/penguins.csv, as an API body (codes): the
# schema's example, the probe every discovered model must answer, the tests' samples.
EXAMPLES: dict[str, dict[str, float | int]] = {
    "Adelie": {
        "island": 1, "bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181,
        "body_mass_g": 3750, "sex": 1, "year": 2007,
    },
    "Chinstrap": {
        "island": 3, "bill_length_mm": 46.5, "bill_depth_mm": 17.9, "flipper_length_mm": 192,
        "body_mass_g": 3500, "sex": 0, "year": 2007,
    },
    "Gentoo": {
        "island": 2, "bill_length_mm": 46.1, "bill_depth_mm": 13.2, "flipper_length_mm": 211,
        "body_mass_g": 4500, "sex": 0, "year": 2007,
    },
}  # fmt: skip


@dataclass(frozen=True)
class FieldRule:
    minimum: float
    maximum: float
    integral: bool = False
    labels: dict[int, str] | None = None  # code → name, for fields also given by name

    @cached_property
    def names(self) -> dict[str, int] | None:
        return None if self.labels is None else {name.lower(): code for code, name in self.labels.items()}

    def describe(self) -> str:
        if self.labels is not None:
            options = ", ".join(f"{code} ({name})" for code, name in self.labels.items())
            return f"must be one of {options}, as the code or the name"
        if self.integral:
            return f"must be a whole number from {self.minimum:g} to {self.maximum:g}"
        return f"must be a number from {self.minimum:g} to {self.maximum:g}"


RULES: dict[str, FieldRule] = {
    "island": FieldRule(1, 3, integral=True, labels=ISLANDS),
    "bill_length_mm": FieldRule(10.0, 100.0),
    "bill_depth_mm": FieldRule(5.0, 35.0),
    "flipper_length_mm": FieldRule(100.0, 300.0),
    "body_mass_g": FieldRule(1000.0, 10000.0),
    "sex": FieldRule(0, 1, integral=True, labels=SEXES),
    "year": FieldRule(2000, 2030, integral=True),
}

_MISSING = object()


class InputError(Exception):
    """Invalid input; ``errors`` maps a field path to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{key}: {' '.join(msgs)}" for key, msgs in errors.items()))
        self.errors = errors


def _scalar(rule: FieldRule, value: Any) -> float | str:
    """Convert one value, or return the message saying why it cannot be."""
    if value is _MISSING:
        return "This field is required."
    if value is None:
        return f"This field may not be null; it {rule.describe()}."
    if isinstance(value, str) and rule.labels is not None:
        code = rule.names.get(value.lower())
        return float(code) if code is not None else f"Unknown name {value[:40]!r}; it {rule.describe()}."
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"Expected a number, got {type(value).__name__}; it {rule.describe()}."
    try:
        number = float(value)
    except OverflowError:
        return f"Out of range; it {rule.describe()}."
    if not math.isfinite(number) or not rule.minimum <= number <= rule.maximum:
        return f"Out of range ({_short(value)}); it {rule.describe()}."
    if rule.integral and not number.is_integer():
        return f"Not a whole number ({_short(value)}); it {rule.describe()}."
    return number


_FIELD_RULES = [(field, RULES[field]) for field in FIELDS]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _column(rule: FieldRule, values: list[Any]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Convert one column; the fast path handles the all-numbers case in numpy.

    A single penguin skips it: for one value, numpy's set-up costs more than the checks.
    """
    if len(values) > 1 and set(map(type, values)) <= {int, float}:
        try:
            column = np.array(values, dtype=np.float64)
        except OverflowError:
            column = None
        if column is not None:
            with np.errstate(invalid="ignore"):
                ok = np.isfinite(column) & (column >= rule.minimum) & (column <= rule.maximum)
                if rule.integral:
                    ok &= column == np.floor(column)
            if ok.all():
                return column, []
            bad = np.flatnonzero(~ok)[:MAX_ERRORS]
            return column, [(int(i), str(_scalar(rule, values[i]))) for i in bad]
    column = np.empty(len(values), dtype=np.float64)
    problems: list[tuple[int, str]] = []
    for index, value in enumerate(values):
        converted = _scalar(rule, value)
        if isinstance(converted, str):
            problems.append((index, converted))
            column[index] = np.nan
            if len(problems) >= MAX_ERRORS:
                break
        else:
            column[index] = converted
    return column, problems


def parse_rows(rows: Sequence[Any], *, prefix: str | None = None) -> np.ndarray:
    """Validate ``rows`` (JSON objects) and return an ``(n, 7)`` float array in FIELDS order.

    Raises ``InputError``; with ``prefix`` the error keys name the row
    (``instances[3].island``), without it they are bare field names (one penguin).
    """

    def key(index: int, field: str | None) -> str:
        if prefix is None:
            return field or "non_field_errors"
        return f"{prefix}[{index}]" + (f".{field}" if field else "")

    errors: dict[str, list[str]] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            errors[key(index, None)] = [f"Expected a JSON object with the fields {', '.join(FIELDS)}."]
            if len(errors) >= MAX_ERRORS:
                break
    if errors:
        raise InputError(errors)

    matrix = np.empty((len(rows), len(FIELDS)), dtype=np.float64)
    found: list[tuple[int, int, str]] = []
    for position, field in enumerate(FIELDS):
        column, problems = _column(RULES[field], [row.get(field, _MISSING) for row in rows])
        matrix[:, position] = column
        found.extend((index, position, message) for index, message in problems)
    if found:
        for index, position, message in sorted(found)[:MAX_ERRORS]:
            errors.setdefault(key(index, FIELDS[position]), []).append(message)
        raise InputError(errors)
    return matrix


def parse_one(data: Any) -> np.ndarray:
    """Validate one penguin (a JSON object); returns a ``(1, 7)`` array."""
    if not isinstance(data, dict):
        raise InputError({"non_field_errors": [f"Expected a JSON object with the fields {', '.join(FIELDS)}."]})
    # parse_rows' checks and messages, value by value: one row needs no column arrays.
    values = [_scalar(rule, data.get(field, _MISSING)) for field, rule in _FIELD_RULES]
    if any(isinstance(value, str) for value in values):
        raise InputError({field: [value] for (field, _), value in zip(_FIELD_RULES, values) if isinstance(value, str)})
    return np.array([values], dtype=np.float64)


def row_to_input(row: np.ndarray) -> dict[str, float | int]:
    """The canonical JSON form of one parsed row (codes as ints), as logged."""
    return {
        field: (int(value) if RULES[field].integral else float(value)) for field, value in zip(FIELDS, row.tolist())
    }


def probabilities_rounded(probabilities: np.ndarray) -> np.ndarray:
    """Species probabilities to 6 decimals, each row still summing to 1: what an answer says
    and what the log keeps.

    Rounding alone can leave a row at 0.999999; the remainder goes to the row's largest
    entry, so the decimals a client reads add up to exactly 1.
    """
    rounded = probabilities.round(6)
    rows = np.arange(len(rounded))
    top = rounded.argmax(axis=1)
    rounded[rows, top] = (rounded[rows, top] + (1.0 - rounded.sum(axis=1))).round(6)
    return rounded


def derived_features(matrix: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Build the columns a model was trained on from the seven parsed fields.

    Always a new array, which a model may change in place. For a model trained on the seven
    fields in their parsed order (the models the service trains) that is a plain copy, cheaper
    for one penguin than stacking its columns again."""
    if tuple(names) == FIELDS and matrix.ndim == 2 and matrix.shape[1] == len(FIELDS):
        return matrix.copy()
    columns = []
    for name in names:
        if name in FIELDS:
            columns.append(matrix[:, FIELDS.index(name)])
        elif name == "bill_ratio":
            columns.append(matrix[:, 1] / matrix[:, 2])
        elif name == "body_mass_kg":
            columns.append(matrix[:, 4] / 1000.0)
        else:  # guarded at registration: only known names are accepted
            raise KeyError(name)
    return np.column_stack(columns) if columns else np.empty((len(matrix), 0))


KNOWN_FEATURES = frozenset(LEGACY_FEATURES)
