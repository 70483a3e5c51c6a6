"""Whole numbers in JSON bodies: `3` and `3.0` are the same number.

JSON has one number type and JSON Schema counts `3.0` as an integer, so a client (or a
JavaScript serialiser) that sends `3.0` for a count or an amount in cents sent a valid integer.
Strict integers would refuse it; lax ones would also take `"3"` and `true`. `WholeNumber` takes a
float only when it has no fractional part, and nothing else but an int.

Constraints go on the field (`rating: WholeNumber = Field(ge=1, le=5)`) or, in an alias of one's
own, into the same `Annotated` before `WHOLE`: `Annotated[int, Field(ge=1, strict=True), WHOLE]`.
(Pydantic documents the bounds of `Annotated[WholeNumber, Field(ge=1)]` as `ge`, which is not
JSON Schema.)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field


def _whole(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # anything else: the strict int check decides


WHOLE = BeforeValidator(_whole)
WholeNumber = Annotated[int, Field(strict=True), WHOLE]
