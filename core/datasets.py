"""Reading the penguin tables: ``penguins.csv`` (names) or ``penguins_v1.csv`` (codes).

Both become one frame with species/island/sex as names and the measurements as numbers.
Rows with a missing measurement, sex or year are dropped before training (not imputed):
11 of the 344 rows in ``penguins.csv``, leaving 333. A malformed file is refused with a
``DatasetError`` naming the file, the row (its line number in the file) and the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.encoding import FIELDS, ISLANDS, SEXES, SPECIES, SPECIES_BY_NAME, V1_SPECIES
from core.hashing import sha256_file

MEASUREMENTS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year")
REQUIRED_COLUMNS = ("species", "island", *FIELDS[1:5], "sex", "year")
NA_VALUES = {"NA", "N/A", "NaN", "nan", ""}


class DatasetError(ValueError):
    """The file cannot be used for training; the message says where and why."""


@dataclass(frozen=True)
class Dataset:
    path: Path
    sha256: str
    coding: str  # "names" (penguins.csv) or "v1" (penguins_v1.csv)
    rows_in_file: int
    frame: pd.DataFrame  # clean rows: species/island/sex names, numeric measurements

    @property
    def rows_used(self) -> int:
        return len(self.frame)

    def features(self) -> np.ndarray:
        """The seven model inputs per row, in the API's coding and FIELDS order."""
        island_codes = {name: code for code, name in ISLANDS.items()}
        sex_codes = {name: code for code, name in SEXES.items()}
        columns = {
            **{name: self.frame[name].to_numpy(dtype=float) for name in MEASUREMENTS},
            "island": self.frame["island"].map(island_codes).to_numpy(dtype=float),
            "sex": self.frame["sex"].map(sex_codes).to_numpy(dtype=float),
        }
        return np.column_stack([columns[name] for name in FIELDS])

    def target(self) -> np.ndarray:
        """Species as the API's ids (1=Adelie, 2=Chinstrap, 3=Gentoo)."""
        return self.frame["species"].map(lambda name: SPECIES_BY_NAME[name.lower()]).to_numpy(dtype=int)

    def describe(self) -> dict:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "coding": self.coding,
            "rows_in_file": self.rows_in_file,
            "rows_used": self.rows_used,
        }


def dataset_load(path: str | Path) -> Dataset:
    """Read and validate a penguin table in either format."""
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a directory, not a CSV file.") from None
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: the file is empty; expected a CSV header and rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable CSV file ({exc}).") from None

    raw.columns = [str(column).strip() for column in raw.columns]
    missing = [column for column in REQUIRED_COLUMNS if column not in raw.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)}.")
    if raw.empty:
        raise DatasetError(f"{path}: the file has a header but no rows.")

    frame = raw.apply(lambda column: column.str.strip())
    na = frame.isin(NA_VALUES)
    coded = _is_coded(frame["species"], na["species"])
    species_names = V1_SPECIES if coded else None

    clean = pd.DataFrame(index=frame.index)
    clean["species"] = _names(path, frame, na, "species", species_names or SPECIES, coded, required=True)
    clean["island"] = _names(path, frame, na, "island", ISLANDS, coded)
    clean["sex"] = _names(path, frame, na, "sex", SEXES, coded)
    for column in MEASUREMENTS:
        clean[column] = _numbers(path, frame, na, column)

    complete = clean.dropna()
    if complete.empty:
        raise DatasetError(f"{path}: no row has all of {', '.join(REQUIRED_COLUMNS)} filled in.")
    return Dataset(
        path=path.resolve(),
        sha256=sha256_file(path),
        coding="v1" if coded else "names",
        rows_in_file=len(frame),
        frame=complete.reset_index(drop=True),
    )


def _line(index: int) -> int:
    return int(index) + 2  # the header is line 1


def _is_coded(species: pd.Series, na: pd.Series) -> bool:
    values = species[~na]
    return bool(len(values)) and bool(values.str.fullmatch(r"\d+").all())


def _names(path, frame, na, column, codes: dict[int, str], coded: bool, required: bool = False) -> pd.Series:
    values = frame[column]
    if required and na[column].any():
        index = na[column].idxmax()
        raise DatasetError(f"{path}: row {_line(index)}, column {column}: missing value.")
    if coded:
        lookup = {str(code): name for code, name in codes.items()}
    else:
        lookup = {name.lower(): name for name in codes.values()}
    mapped = values.str.lower().map(lookup) if not coded else values.map(lookup)
    unknown = mapped.isna() & ~na[column]
    if unknown.any():
        index = unknown.idxmax()
        allowed = ", ".join(lookup)
        raise DatasetError(
            f"{path}: row {_line(index)}, column {column}: unknown value {values[index]!r}; expected one of {allowed}."
        )
    return mapped


def _numbers(path, frame, na, column) -> pd.Series:
    numbers = pd.to_numeric(frame[column].where(~na[column]), errors="coerce")
    bad = numbers.isna() & ~na[column]
    if bad.any():
        index = bad.idxmax()
        raise DatasetError(f"{path}: row {_line(index)}, column {column}: {frame[column][index]!r} is not a number.")
    return numbers
