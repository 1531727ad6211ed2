"""Property tests of the input parser: inside the contract → 200, outside → 400 naming the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.encoding import FIELDS, ISLANDS, SEXES, InputError, derived_features, parse_one

RANGES = {
    "bill_length_mm": (10.0, 100.0),
    "bill_depth_mm": (5.0, 35.0),
    "flipper_length_mm": (100.0, 300.0),
    "body_mass_g": (1000.0, 10000.0),
}


def any_case(word: str):
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flags: "".join(c.upper() if up else c.lower() for c, up in zip(word, flags))
    )


def code_or_name(codes: dict[int, str]):
    return st.one_of(
        st.sampled_from(sorted(codes)),
        st.sampled_from(sorted(codes)).map(float),
        st.sampled_from(list(codes.values())).flatmap(any_case),
    )


def measurement(field: str):
    low, high = RANGES[field]
    return st.one_of(st.floats(low, high), st.integers(int(low) + 1, int(high)))


valid_penguin = st.fixed_dictionaries(
    {
        "island": code_or_name(ISLANDS),
        **{field: measurement(field) for field in RANGES},
        "sex": code_or_name(SEXES),
        "year": st.integers(2000, 2030),
    }
)

invalid_value = {
    "island": st.one_of(
        st.integers().filter(lambda v: v not in ISLANDS),
        st.text(max_size=12).filter(lambda t: t.lower() not in {n.lower() for n in ISLANDS.values()}),
        st.floats(1, 3).filter(lambda v: not v.is_integer()),
        st.booleans(),
        st.none(),
        st.lists(st.integers(1, 3), max_size=2),
    ),
    "sex": st.one_of(
        st.integers().filter(lambda v: v not in SEXES),
        st.text(max_size=8).filter(lambda t: t.lower() not in SEXES.values()),
        st.booleans(),
        st.none(),
    ),
    "year": st.one_of(
        st.integers().filter(lambda v: not 2000 <= v <= 2030),
        st.floats(2000, 2030).filter(lambda v: not v.is_integer()),
        st.text(max_size=6),
    ),
    **{
        field: st.one_of(
            st.floats(allow_nan=False, allow_infinity=False).filter(lambda v, lo=lo, hi=hi: not lo <= v <= hi),
            st.integers().filter(lambda v, lo=lo, hi=hi: not lo <= v <= hi),
            st.text(max_size=8),
            st.booleans(),
            st.none(),
        )
        for field, (lo, hi) in RANGES.items()
    },
}


@given(valid_penguin)
def test_every_penguin_inside_the_contract_parses(body):
    matrix = parse_one(body)
    assert matrix.shape == (1, 7)
    assert matrix[0, 0] in ISLANDS and matrix[0, 5] in SEXES


@given(valid_penguin, st.sampled_from(FIELDS), st.data())
def test_any_field_outside_the_contract_is_refused_by_name(body, field, data):
    body = {**body, field: data.draw(invalid_value[field])}
    with pytest.raises(InputError) as error:
        parse_one(body)
    assert list(error.value.errors) == [field]


@given(valid_penguin, st.sampled_from(FIELDS))
def test_a_missing_field_is_refused_by_name(body, field):
    del body[field]
    with pytest.raises(InputError) as error:
        parse_one(body)
    assert error.value.errors == {field: ["This field is required."]}


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=valid_penguin)
def test_the_api_answers_200_inside_the_contract(client, knn_model, body):
    response = client.post("/classify/knn", json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    assert response.json()["species_id"] in (1, 2, 3)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=valid_penguin, field=st.sampled_from(FIELDS), data=st.data())
def test_the_api_answers_400_outside_the_contract(client, knn_model, body, field, data):
    body = {**body, field: data.draw(invalid_value[field])}
    response = client.post("/classify/knn", json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


@given(valid_penguin, st.permutations(FIELDS), st.sampled_from([(), ("bill_ratio",), ("body_mass_kg",)]))
@settings(max_examples=50, deadline=None)
def test_a_model_gets_the_columns_it_was_trained_on_in_its_order(body, order, derived):
    parsed = parse_one(body)
    fields = parse_one(body)[0].tolist()  # parsed again: what the model is given must not alias it
    for names in (FIELDS, (*order, *derived)):
        columns = derived_features(parsed, names)
        expected = [
            body["bill_length_mm"] / body["bill_depth_mm"]
            if name == "bill_ratio"
            else body["body_mass_g"] / 1000.0
            if name == "body_mass_kg"
            else fields[FIELDS.index(name)]
            for name in names
        ]
        assert columns.shape == (1, len(names))
        assert columns[0].tolist() == pytest.approx(expected, rel=1e-12)
        columns[:] = -1.0  # a model may scale its input in place: the parsed rows (logged) stay
        assert parsed[0].tolist() == fields
