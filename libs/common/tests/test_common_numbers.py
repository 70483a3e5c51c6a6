"""`WholeNumber`: an integer, whether JSON wrote it `3` or `3.0` — and nothing else."""

from __future__ import annotations

import math
from typing import Annotated

import pytest
from pydantic import BaseModel, Field, ValidationError

from fleet.common.numbers import WHOLE, WholeNumber

Seats = Annotated[int, Field(ge=1, le=9, strict=True), WHOLE]


class Rating(BaseModel):
    stars: WholeNumber = Field(ge=1, le=5)
    seats: Seats | None = None


@pytest.mark.parametrize("sent", [3, 3.0])
def test_an_integer_written_with_or_without_a_fraction_of_zero_is_accepted(sent: object) -> None:
    rating = Rating.model_validate_json(f'{{"stars": {sent}}}')
    assert rating.stars == 3
    assert type(rating.stars) is int


@pytest.mark.parametrize("sent", [3.5, "3", True, None, math.nan, 1e300])
def test_fractions_strings_booleans_and_out_of_range_values_are_refused(sent: object) -> None:
    with pytest.raises(ValidationError):
        Rating.model_validate({"stars": sent})


@pytest.mark.parametrize("sent", [3.0, 10, "3", True])
def test_an_alias_with_its_own_bounds_takes_the_same_rule(sent: object) -> None:
    if sent == 3.0:
        assert Rating.model_validate({"stars": 1, "seats": sent}).seats == 3
    else:
        with pytest.raises(ValidationError):
            Rating.model_validate({"stars": 1, "seats": sent})


def test_the_schema_says_integer_with_json_schema_bounds() -> None:
    properties = Rating.model_json_schema()["properties"]
    assert properties["stars"] == {"maximum": 5, "minimum": 1, "title": "Stars", "type": "integer"}
    seats = properties["seats"]["anyOf"][0]
    assert seats == {"maximum": 9, "minimum": 1, "type": "integer"}
