"""Free text: control characters are refused, and the OpenAPI pattern says exactly that rule."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel, ValidationError

from fleet.common.text import MultiLine, OneLine


class Note(BaseModel):
    title: OneLine
    body: MultiLine


def accepted(field: str, value: str) -> bool:
    values = {"title": "t", "body": "b"} | {field: value}
    try:
        Note.model_validate(values)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("field", ["title", "body"])
def test_the_documented_pattern_accepts_exactly_what_the_validator_accepts(field: str) -> None:
    pattern = Note.model_json_schema()["properties"][field]["pattern"]
    for code in range(0, 0x110):  # every ASCII character and some beyond
        value = f"a{chr(code)}b"
        assert bool(re.fullmatch(pattern, value)) == accepted(field, value), repr(chr(code))


def test_one_line_refuses_newlines_and_multi_line_keeps_them() -> None:
    assert not accepted("title", "two\nlines")
    assert accepted("body", "two\nlines\r\n\tindented")
    with pytest.raises(ValidationError, match="control characters are not allowed"):
        Note.model_validate({"title": "nul\x00", "body": ""})
