"""The trip schema's tables."""

from __future__ import annotations

from fleet.common.db import service_metadata

SCHEMA = "trip"
metadata = service_metadata(SCHEMA)
