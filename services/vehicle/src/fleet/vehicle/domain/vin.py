"""Vehicle identification numbers (ISO 3779): 17 characters, no I, O or Q.

The check digit (position 9) is only mandatory in North America, so it is not verified: a
European or Asian VIN with any character there is still valid.
"""

from __future__ import annotations

import re

from fleet.common.errors import InvalidInputError

VIN_LENGTH = 17
_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")


def normalize_vin(raw: str) -> str:
    """The VIN upper-cased and trimmed; 422 naming `vin` if it is not a well-formed VIN."""
    vin = raw.strip().upper()
    if len(vin) != VIN_LENGTH:
        raise InvalidInputError(f"a VIN has {VIN_LENGTH} characters", field="vin")
    if not _VIN.fullmatch(vin):
        raise InvalidInputError("a VIN uses only A-Z and 0-9, without I, O and Q", field="vin")
    return vin
