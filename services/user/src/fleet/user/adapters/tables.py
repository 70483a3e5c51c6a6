"""The user schema's tables."""

from __future__ import annotations

from fleet.common.db import service_metadata

SCHEMA = "user_svc"
metadata = service_metadata(SCHEMA)
