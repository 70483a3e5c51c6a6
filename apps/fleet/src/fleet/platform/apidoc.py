"""docs/api.md from the platform's OpenAPI document, so the written reference cannot drift."""

from __future__ import annotations

from typing import Any

from fleet.common.config import Settings
from fleet.platform.embedded import embedded_app
from fleet.platform.services import SERVICE_NAMES, service_for_path

HEADER = """# API reference

Generated from the code by `fleet api-doc > docs/api.md` (a test keeps it current). The live,
complete schema of every request and response is at `/docs` and `/openapi.json` of a running
service. Conventions: JSON, snake_case, UUID ids, ISO-8601 UTC times, money in integer cents,
errors as RFC 9457 `application/problem+json`, lists as `{"items": [...], "next_cursor": ...}`
with `?limit=` (1-200, default 50) and `?cursor=`.
"""


def _rows(paths: dict[str, Any], owner: str | None) -> list[str]:
    rows = []
    for path, ops in sorted(paths.items()):
        if service_for_path(path) != owner:
            continue
        for method, op in ops.items():
            auth = "token" if op.get("security") or _needs_token(op) else "-"
            rows.append(f"| `{method.upper()} {path}` | {op.get('summary', '')} | {auth} |")
    return rows


def _needs_token(op: dict[str, Any]) -> bool:
    return any(p.get("name") == "Authorization" for p in op.get("parameters", []))


def render() -> str:
    """The markdown reference: one table per service, then the endpoints every service has."""
    schema = embedded_app(Settings(env="test")).openapi()
    paths: dict[str, Any] = schema["paths"]
    parts = [HEADER]
    for name in (*SERVICE_NAMES, None):
        parts.append(f"\n## {name or 'every service'}\n")
        parts.append("| endpoint | what | auth |\n|---|---|---|")
        parts.extend(_rows(paths, name))
    return "\n".join(parts) + "\n"
