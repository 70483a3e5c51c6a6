"""What a distributed stack's processes inherit: a bytecode cache where the sources get none."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.platform.distributed import DistributedStack


def _stack(tmp_path: Path, pycache: Path | None) -> DistributedStack:
    return DistributedStack(
        database_url="postgresql+asyncpg://unused/db",
        amqp_url="amqp://unused/",
        data_dir=tmp_path,
        pycache=pycache,
    )


def test_processes_cache_bytecode_in_the_shared_folder_where_none_may_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = _stack(tmp_path, tmp_path / "pycache")._env("trip")
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"] == str(tmp_path / "pycache")


def test_the_bytecode_settings_pass_through_without_a_shared_folder_or_the_ban(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    assert _stack(tmp_path, None)._env("trip")["PYTHONDONTWRITEBYTECODE"] == "1"
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE")
    env = _stack(tmp_path, tmp_path / "pycache")._env("trip")
    assert "PYTHONPYCACHEPREFIX" not in env  # bytecode goes next to the sources, as usual
