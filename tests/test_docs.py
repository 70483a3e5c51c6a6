"""The written docs match the code."""

from __future__ import annotations

from pathlib import Path

from fleet.platform.apidoc import render

ROOT = Path(__file__).resolve().parents[1]


def test_api_reference_lists_exactly_the_endpoints_the_code_serves() -> None:
    written = (ROOT / "docs" / "api.md").read_text()
    assert written == render(), "docs/api.md is stale: run `uv run fleet api-doc > docs/api.md`"


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make run", "make test"]
