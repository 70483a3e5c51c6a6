"""Fixtures of the cross-service tests: the platform as four real processes (distributed mode)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.common.testing import (
    create_database,
    create_vhost,
    delete_vhost,
    drop_database,
    free_ports,
)
from fleet.platform.distributed import DistributedStack


@pytest.fixture
def stack_env() -> dict[str, str]:
    """Extra environment for the stack's processes; override it in a test module."""
    return {}


@pytest.fixture(scope="session")
def stack_pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bytecode cache for every stack's processes (used where PYTHONDONTWRITEBYTECODE is
    set; CI does not set it)."""
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture
def stack(
    tmp_path: Path, stack_env: dict[str, str], stack_pycache: Path
) -> Iterator[DistributedStack]:
    """user, vehicle, trip and billing as separate processes on a fresh database and vhost."""
    database = create_database()
    amqp = create_vhost()
    ports = free_ports(5)
    s = DistributedStack(
        database_url=database,
        amqp_url=amqp,
        redis_url="redis://127.0.0.1:6379/0",
        data_dir=tmp_path,
        ports=dict(zip(("user", "vehicle", "trip", "billing"), ports[:4], strict=True)),
        gateway_port=ports[4],
        extra_env={"FLEET_ENV": "test", "FLEET_LOG_LEVEL": "WARNING", **stack_env},
        pycache=stack_pycache,
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()
        delete_vhost(amqp)
        drop_database(database)
