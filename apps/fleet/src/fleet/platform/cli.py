"""`fleet`: run the platform embedded or one service at a time, and migrate schemas."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from fleet.common import migrations
from fleet.common.config import Settings
from fleet.common.db import Database
from fleet.platform.embedded import embedded_app, service_app
from fleet.platform.services import SERVICE_NAMES, module_named

app = typer.Typer(help="Fleet platform command line.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)

HostOpt = Annotated[str, typer.Option(help="Interface to bind.")]
PortOpt = Annotated[int, typer.Option(help="TCP port.")]


def _settings(data_dir: Path | None) -> Settings:
    overrides = {"data_dir": data_dir} if data_dir else {}
    return Settings(**overrides)  # type: ignore[arg-type]


def _serve(asgi: object, host: str, port: int) -> None:
    uvicorn.run(asgi, host=host, port=port, log_config=None, access_log=False)  # type: ignore[arg-type]


@app.command()
def run(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    data_dir: Annotated[Path | None, typer.Option(help="Where the SQLite files live.")] = None,
) -> None:
    """Start the whole platform in one process (embedded mode)."""
    settings = _settings(data_dir)
    url = f"http://{host}:{port}"
    console.print(f"[bold]Fleet platform[/] (embedded) on {url}")
    console.print(f"  API docs:   {url}/docs")
    console.print(f"  data dir:   {settings.data_dir.resolve()}")
    console.print(
        f"  admin:      {settings.admin_email} / "
        f"{settings.admin_password.get_secret_value() if settings.is_dev else '(from env)'}"
    )
    _serve(embedded_app(settings), host, port)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICE_NAMES)}.")],
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    migrate: Annotated[bool, typer.Option(help="Apply migrations before serving.")] = False,
) -> None:
    """Serve one service (distributed mode; DATABASE_URL chooses the database)."""
    _check_service(service)
    settings = Settings()
    console.print(f"[bold]Fleet {service} service[/] on http://{host}:{port}")
    _serve(service_app(service, settings, migrate=migrate), host, port)


@app.command()
def migrate(
    service: Annotated[str | None, typer.Argument(help="Service (default: all).")] = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to --revision.")] = False,
) -> None:
    """Apply (or roll back) each service's own migration history."""
    names = [service] if service else list(SERVICE_NAMES)
    for name in names:
        _check_service(name)
    target = "base" if down and revision == "head" else revision
    asyncio.run(_migrate(names, target, down))


async def _migrate(names: list[str], target: str, down: bool) -> None:
    settings = Settings()
    for name in names:
        module = module_named(name)
        db = Database(settings.database_url_for(name), module.schema)
        try:
            step = migrations.downgrade if down else migrations.upgrade
            await step(db, module.migrations, target)
            console.print(f"{name:8} -> {await migrations.current_revision(db) or 'base'}")
        finally:
            await db.dispose()


def _check_service(name: str) -> None:
    if name not in SERVICE_NAMES:
        console.print(f"[red]unknown service {name!r}[/]; choose from {', '.join(SERVICE_NAMES)}")
        raise typer.Exit(2)


def main() -> None:
    app()
