"""Vehicle identification numbers (ISO 3779): 17 characters, no I, O or Q.

The check digit (position 9) is only mandatory in North America, so it is not verified: a
European or Asian VIN with any character there is still valid.
"""

from __future__ import annotations

import re

from fleet.common.errors import InvalidInputError

VIN_LENGTH = 17
# Letters of either case (upper-cased after the check) and digits, spelled out: no Unicode case
# folding lets the long s (U+017F) or the Kelvin sign through, and no upper-casing turns `ß`
# into two letters.
_CHARACTERS = "[A-HJ-NPR-Za-hj-npr-z0-9]"
_VIN = re.compile(f"{_CHARACTERS}{{{VIN_LENGTH}}}")
# Trimmed before the check: ASCII whitespace only, so that the published pattern says the same.
_SPACE = " \t\n\r\f\v"
# The same characters as a regular-expression class, written as escapes (`\t`, `\x0b`…: valid in
# Python and in JSON Schema's ECMA-262 patterns) so the published pattern holds no control
# characters.
_SPACE_CLASS = f"[{_SPACE.encode('unicode_escape').decode()}]"
# What the API documents (the schema's `pattern`) for exactly the inputs `normalize_vin` takes.
VIN_PATTERN = rf"^{_SPACE_CLASS}*{_CHARACTERS}{{{VIN_LENGTH}}}{_SPACE_CLASS}*$"


def normalize_vin(raw: str) -> str:
    """The VIN upper-cased and trimmed; 422 naming `vin` if it is not a well-formed VIN."""
    vin = raw.strip(_SPACE)
    if len(vin) != VIN_LENGTH:
        raise InvalidInputError(f"a VIN has {VIN_LENGTH} characters", field="vin")
    if not _VIN.fullmatch(vin):
        raise InvalidInputError("a VIN uses only A-Z and 0-9, without I, O and Q", field="vin")
    return vin.upper()
