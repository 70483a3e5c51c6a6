"""The vehicle schema's tables."""

from __future__ import annotations

from fleet.common.db import service_metadata

SCHEMA = "vehicle"
metadata = service_metadata(SCHEMA)
