"""Reading penguins.csv and penguins_v1.csv, and refusing malformed files."""

from __future__ import annotations

import csv

import pytest

from core.datasets import DatasetError, dataset_load
from tests.support.data import DATA, DATA_V1

HEADER = "species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year\n"
GOOD_ROW = "Adelie,Torgersen,39.1,18.7,181,3750,male,2007\n"


def complete_rows(path):
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if "NA" not in row.values()]


def test_penguins_csv_loads_with_incomplete_rows_dropped():
    dataset = dataset_load(DATA)
    rows = complete_rows(DATA)
    assert dataset.rows_in_file == 344
    assert dataset.rows_used == len(rows) == 333
    assert dataset.coding == "names"
    assert list(dataset.frame["species"]) == [row["species"] for row in rows]
    assert dataset.features().shape == (333, 7)


def test_v1_file_decodes_to_the_same_penguins_row_by_row():
    """penguins_v1.csv's id is the row number in penguins.csv; its codes must give the same names."""
    named = dataset_load(DATA).frame
    coded = dataset_load(DATA_V1)
    assert coded.coding == "v1"
    with open(DATA, newline="") as handle:
        original = list(csv.DictReader(handle))
    with open(DATA_V1, newline="") as handle:
        ids = [int(row["id"]) for row in csv.DictReader(handle)]
    for position, row_id in enumerate(ids):
        source = original[row_id - 1]
        decoded = coded.frame.iloc[position]
        assert (decoded["species"], decoded["island"], decoded["sex"]) == (
            source["species"],
            source["island"],
            source["sex"],
        ), f"v1 id {row_id}"
    assert sorted(coded.frame["species"]) == sorted(named["species"])


def test_both_files_give_identical_features_and_targets():
    named, coded = dataset_load(DATA), dataset_load(DATA_V1)
    assert (named.features() == coded.features()).all()
    assert (named.target() == coded.target()).all()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "the file is empty"),
        (HEADER, "header but no rows"),
        (HEADER.replace("bill_depth_mm,", ""), "missing column(s) bill_depth_mm"),
        (
            HEADER + GOOD_ROW + "Emperor,Dream,39,18,181,3750,male,2007\n",
            "row 3, column species: unknown value 'Emperor'",
        ),
        (HEADER + GOOD_ROW + "Adelie,Atlantis,39,18,181,3750,male,2007\n", "row 3, column island"),
        (HEADER + GOOD_ROW + "Adelie,Dream,39,eighteen,181,3750,male,2007\n", "row 3, column bill_depth_mm"),
        (HEADER + GOOD_ROW + "Adelie,Dream,39,18,181,3750,unknown,2007\n", "row 3, column sex"),
        (HEADER + "NA,Dream,39,18,181,3750,male,2007\n", "row 2, column species: missing value"),
    ],
)
def test_a_malformed_file_is_refused_naming_file_row_and_column(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DatasetError) as error:
        dataset_load(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        dataset_load(tmp_path / "absent.csv")


def test_a_v1_file_with_an_unknown_code_is_refused(tmp_path):
    path = tmp_path / "v1.csv"
    path.write_text("id," + HEADER + "1,1,1,39.1,18.7,181,3750,1,2007\n2,4,1,39.1,18.7,181,3750,1,2007\n")
    with pytest.raises(DatasetError, match="row 3, column species: unknown value '4'"):
        dataset_load(path)
