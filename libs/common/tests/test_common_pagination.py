from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.common.errors import InvalidInputError
from fleet.common.pagination import PageParams, decode_cursor, encode_cursor, paginate


@given(st.lists(st.text(max_size=30), min_size=1, max_size=4))
def test_cursor_round_trips_any_values(values: list[str]) -> None:
    assert decode_cursor(encode_cursor(*values), len(values)) == values


@pytest.mark.parametrize(
    "cursor", ["!!!", "bm90LWpzb24", encode_cursor("a"), encode_cursor(1, 2, 3)]
)
def test_foreign_cursors_are_refused_naming_the_cursor(cursor: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        decode_cursor(cursor, 2)
    assert err.value.extra["errors"][0]["loc"] == ["query", "cursor"]


def test_time_id_cursor_refuses_a_non_date() -> None:
    with pytest.raises(InvalidInputError):
        PageParams(10, encode_cursor("yesterday", uuid.uuid4())).after()


def test_time_id_cursor_round_trips() -> None:
    when, ident = dt.datetime.now(dt.UTC), uuid.uuid4()
    assert PageParams(10, encode_cursor(when, ident)).after() == (when, ident)


def test_paginate_gives_a_cursor_only_when_more_rows_follow() -> None:
    assert paginate([1, 2, 3], 3, key=lambda r: (r,)) == ([1, 2, 3], None)
    page, cursor = paginate([1, 2, 3, 4], 3, key=lambda r: (r,))
    assert page == [1, 2, 3]
    assert cursor is not None
    assert decode_cursor(cursor, 1) == ["3"]
