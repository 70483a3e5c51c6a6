"""Text a client may send: no control characters.

PostgreSQL refuses NUL in `text` and `jsonb` (the request would fail as a 500), and the other
control characters are never legitimate in a name, a comment or a key. Request schemas annotate
their free-text fields with these, so the bad input is a 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

# For headers and query parameters, whose validation runs outside a model: the same rule as a
# pattern (documented in OpenAPI, too).
ONE_LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
# The rule of `MultiLine` as a pattern: newline, carriage return and tab are allowed.
MULTI_LINE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def _refuse_control_chars(value: str, allowed: str) -> str:
    if any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in value):
        raise ValueError("control characters are not allowed")
    return value


def one_line(value: str) -> str:
    """`value` if it has no control character at all, else a `ValueError`."""
    return _refuse_control_chars(value, allowed="")


def multi_line(value: str) -> str:
    """`value` if its only control characters are newlines and tabs, else a `ValueError`."""
    return _refuse_control_chars(value, allowed="\n\r\t")


# The validators give the error message; the patterns tell clients the rule (OpenAPI) without
# being checked twice. Add the `*_SCHEMA` to an `Annotated` text type of one's own.
ONE_LINE_SCHEMA = Field(json_schema_extra={"pattern": ONE_LINE_PATTERN})
MULTI_LINE_SCHEMA = Field(json_schema_extra={"pattern": MULTI_LINE_PATTERN})
OneLine = Annotated[str, AfterValidator(one_line), ONE_LINE_SCHEMA]
MultiLine = Annotated[str, AfterValidator(multi_line), MULTI_LINE_SCHEMA]
