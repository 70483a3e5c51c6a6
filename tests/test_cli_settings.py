"""The CLI's server commands build their settings like a long-running server process."""

from __future__ import annotations

import pytest

from fleet.platform.cli import _settings


def test_server_processes_freeze_their_startup_heap_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLEET_GC_FREEZE", raising=False)
    assert _settings().gc_freeze is True


def test_the_environment_can_turn_the_freeze_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_GC_FREEZE", "false")
    assert _settings().gc_freeze is False
