"""`fleet`: run the platform embedded or one service at a time, and migrate schemas."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request

from fleet.common.config import Settings
from fleet.common.db import ensure_database
from fleet.platform.console import console_secret
from fleet.platform.embedded import embedded_app, service_app
from fleet.platform.services import SERVICE_NAMES, migrate_service

app = typer.Typer(help="Fleet platform command line.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)
T = TypeVar("T")

HostOpt = Annotated[str, typer.Option(help="Interface to bind.")]
PortOpt = Annotated[int, typer.Option(help="TCP port.")]


def _settings(data_dir: Path | None = None) -> Settings:
    """The process's settings; a server process freezes its startup heap unless
    FLEET_GC_FREEZE says otherwise."""
    overrides: dict[str, object] = {"data_dir": data_dir} if data_dir else {}
    if "FLEET_GC_FREEZE" not in os.environ:
        overrides["gc_freeze"] = True
    return Settings(**overrides)  # type: ignore[arg-type]


def _serve(asgi: object, host: str, port: int) -> None:
    uvicorn.run(asgi, host=host, port=port, log_config=None, access_log=False)  # type: ignore[arg-type]


@app.command()
def run(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    data_dir: Annotated[Path | None, typer.Option(help="Where the SQLite files live.")] = None,
    distributed: Annotated[
        bool, typer.Option(help="One process per service on PostgreSQL, RabbitMQ and Redis.")
    ] = False,
) -> None:
    """Start the whole platform: in one process (embedded), or one process per service."""
    settings = _settings(data_dir)
    if distributed:
        _run_distributed(settings, host, port)
        return
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
    settings = _settings()
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
        revision = await migrate_service(name, settings.database_url_for(name), target, down=down)
        console.print(f"{name:8} -> {revision or 'base'}")


def _run_distributed(settings: Settings, host: str, port: int) -> None:
    from fleet.platform.distributed import DistributedStack

    if not (settings.database_url and settings.amqp_url):
        console.print("[red]--distributed needs DATABASE_URL and AMQP_URL[/] (and REDIS_URL)")
        raise typer.Exit(2)
    if asyncio.run(ensure_database(settings.database_url)):
        console.print(f"created database {settings.database_url.rsplit('/', 1)[-1]}")
    stack = DistributedStack(
        database_url=settings.database_url,
        amqp_url=settings.amqp_url,
        redis_url=settings.redis_url,
        data_dir=settings.data_dir,
        host=host,
        gateway_port=port,
    )
    with console.status("migrating and starting user, vehicle, trip, billing…"):
        stack.start()
    console.print(f"[bold]Fleet platform[/] (distributed) on {stack.gateway_url}")
    for name, service_port in stack.ports.items():
        console.print(f"  {name:8} http://{host}:{service_port}/docs   log: {stack.log(name)}")
    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on `kill`, not just Ctrl-C
    try:
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(1)
        console.print("[red]a service exited[/]; stopping the others")
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


@app.command("api-doc")
def api_doc() -> None:
    """Print docs/api.md (the endpoint reference) from the code's OpenAPI document."""
    from fleet.platform.apidoc import render

    typer.echo(render(), nl=False)


@app.command("asyncapi")
def asyncapi() -> None:
    """Print docs/asyncapi.yaml (the messages between services, AsyncAPI 3.0) from the code."""
    from fleet.platform.asyncapi import render

    typer.echo(render(), nl=False)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
def gateway(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    upstream: Annotated[
        list[str], typer.Option(help="service=URL, once per service (e.g. trip=http://…:8003).")
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
) -> None:
    """Reverse proxy routing by path prefix to each service (distributed mode)."""
    from fleet.platform.gateway import gateway_app

    upstreams = dict(u.split("=", 1) for u in upstream)
    for name in upstreams:
        _check_service(name)
    _serve(gateway_app(upstreams), host, port)


# `fleet console` listens here unless told otherwise (the services use 8001-8004, the gateway 8000).
CONSOLE_PORT = 8005


def console_server(platform: str | dict[str, str], secret: bytes | None = None) -> Starlette:
    """The operations console alone, at /console, with /health for probes.

    `platform` is the API's base URL (a gateway, the embedded platform), or the services' own
    base URLs (service -> URL) when there is no gateway (Kubernetes): the console then calls them
    through a gateway in this process, which also answers `GET /dead-letters` here with every
    service's queues, as the gateway does."""
    from starlette.responses import JSONResponse
    from starlette.routing import BaseRoute, Mount, Route

    from fleet.platform.console import LocalTransport, console_app
    from fleet.platform.gateway import gateway_app

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    parts: list[Starlette] = []
    routes: list[BaseRoute] = [Route("/health", health)]
    if isinstance(platform, str):
        ui = console_app(platform, secret=secret)
    else:
        proxy = gateway_app(platform, console=False)
        parts.append(proxy)
        routes.append(Route("/dead-letters", proxy, methods=["GET"]))
        ui = console_app(LocalTransport(app=proxy), secret=secret)
    parts.append(ui)
    routes.append(Mount("/console", ui))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Mounted apps get no lifespan of their own: the proxy's client opens and closes here.
        async with AsyncExitStack() as stack:
            for part in parts:
                await stack.enter_async_context(part.router.lifespan_context(part))
            yield

    return Starlette(routes=routes, lifespan=lifespan)


@app.command("console")
def console_command(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = CONSOLE_PORT,
    api_url: Annotated[
        str | None,
        typer.Option(
            envvar="FLEET_API_URL", help="The platform API's base URL (a gateway, `fleet run`)."
        ),
    ] = None,
    upstream: Annotated[
        list[str],
        typer.Option(
            help="service=URL, once per service: call the services directly (no gateway) "
            "instead of --api-url."
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
) -> None:
    """Serve the operations console alone at /console, against the platform's API.

    FLEET_CONSOLE_SECRET keys its forms (required unless FLEET_ENV is dev or test)."""
    if bool(api_url) == bool(upstream):
        console.print(
            "[red]fleet console needs the platform API[/]: --api-url URL (or FLEET_API_URL), "
            "or --upstream service=URL per service, not both"
        )
        raise typer.Exit(2)
    if api_url and not api_url.startswith(("http://", "https://")):
        console.print(f"[red]--api-url must be an http(s) URL[/], not {api_url!r}")
        raise typer.Exit(2)
    upstreams = dict(u.split("=", 1) for u in upstream)
    for name in upstreams:
        _check_service(name)
    try:
        secret = console_secret(os.environ)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    target = api_url or ", ".join(f"{k}={v}" for k, v in upstreams.items())
    console.print(f"[bold]Fleet console[/] on http://{host}:{port}/console/ (API: {target})")
    _serve(console_server(api_url or upstreams, secret), host, port)


dead = typer.Typer(help="Dead letters on RabbitMQ (AMQP_URL): list and replay.")
app.add_typer(dead, name="dead-letters")


@dead.command("list")
def dead_list(
    queue: Annotated[str, typer.Argument(help="A consumer queue, e.g. billing.events.")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Show a queue's dead letters (they stay in place)."""
    from rich.table import Table

    letters = asyncio.run(_with_bus(lambda bus: bus.dead_letters(queue, limit)))
    table = Table("id", "dead at", "type", "attempts", "error", title=f"{queue}.dlq")
    for d in letters:
        kind = d.envelope.event_type if d.envelope else "(unparsable)"
        table.add_row(
            d.id, d.dead_at.isoformat(timespec="seconds"), kind, str(d.attempts), d.error[:80]
        )
    Console().print(table)
    console.print(f"{len(letters)} dead letter(s)")


@dead.command("replay")
def dead_replay(
    queue: Annotated[str, typer.Argument(help="A consumer queue, e.g. billing.events.")],
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only these (repeatable).")] = None,
) -> None:
    """Move dead letters back to their queue (all, or those given with --id)."""
    count = asyncio.run(_with_bus(lambda bus: bus.replay_dead_letters(queue, ids or None)))
    console.print(f"replayed {count} message(s) to {queue}")


async def _with_bus(action: Callable[[Any], Awaitable[T]]) -> T:
    from fleet.common.messaging.rabbit import RabbitBus

    settings = Settings()
    if not settings.amqp_url:
        console.print(
            "[red]AMQP_URL is not set[/] (in embedded mode use GET /dead-letters/{queue})"
        )
        raise typer.Exit(2)
    bus = RabbitBus(settings.amqp_url, service="fleet-cli")
    await bus.start()
    try:
        return await action(bus)
    finally:
        await bus.close()


def _check_service(name: str) -> None:
    if name not in SERVICE_NAMES:
        console.print(f"[red]unknown service {name!r}[/]; choose from {', '.join(SERVICE_NAMES)}")
        raise typer.Exit(2)


@app.command()
def audit() -> None:
    """Check the cross-service invariants of a quiet deployment (DATABASE_URL, AMQP_URL)."""
    from fleet.platform.audit import audit as run_audit
    from fleet.platform.audit import report

    settings = Settings()
    if not settings.database_url or settings.database_url.startswith("sqlite"):
        console.print("[red]audit needs DATABASE_URL of the PostgreSQL deployment[/]")
        raise typer.Exit(2)
    violations = asyncio.run(run_audit(settings.database_url, settings.amqp_url))
    console.print(report(violations))
    raise typer.Exit(1 if violations else 0)


@app.command()
def chaos(
    bookings: Annotated[int, typer.Option(min=1, help="Bookings to make.")] = 60,
    concurrency: Annotated[int, typer.Option(min=1, help="Bookings in flight.")] = 8,
    vehicles: Annotated[
        int, typer.Option(min=1, help="Vehicles (fewer than bookings: some fail).")
    ] = 30,
    crashes: Annotated[int, typer.Option(min=0, help="Service processes to SIGKILL.")] = 4,
    target: Annotated[
        list[str] | None, typer.Option(help="Service to crash (repeatable; default: all four).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same plan.")] = 0,
) -> None:
    """Book and ride on an own distributed stack while services crash; then audit it.

    Uses the local PostgreSQL, RabbitMQ and Redis (a fresh database and vhost, removed after).
    Exits 1 if an invariant is violated."""
    import tempfile

    from fleet.common.testing import (
        create_database,
        create_vhost,
        delete_vhost,
        drop_database,
        free_ports,
    )
    from fleet.platform.audit import report
    from fleet.platform.chaos import ChaosPlan, ChaosRun
    from fleet.platform.distributed import DistributedStack

    for name in target or []:
        _check_service(name)
    plan = ChaosPlan(
        bookings=bookings,
        concurrency=concurrency,
        vehicles=vehicles,
        crashes=crashes,
        targets=tuple(target or SERVICE_NAMES),
        seed=seed,
    )
    database, amqp = create_database(prefix="fleet_chaos"), create_vhost(prefix="fleet_chaos")
    ports = free_ports(len(SERVICE_NAMES) + 1)
    stack = DistributedStack(
        database_url=database,
        amqp_url=amqp,
        redis_url=Settings().redis_url or "redis://127.0.0.1:6379/0",
        data_dir=Path(tempfile.mkdtemp(prefix="fleet-chaos-")),
        ports=dict(zip(SERVICE_NAMES, ports, strict=False)),
        gateway_port=ports[-1],
        extra_env={"FLEET_LOG_LEVEL": "WARNING"},
    )

    def progress(line: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {line}")

    try:
        with console.status("migrating and starting user, vehicle, trip, billing…"):
            stack.start()
        result = asyncio.run(ChaosRun(stack, plan, progress).run())
    finally:
        stack.stop()
        delete_vhost(amqp)
        drop_database(database)
    console.print(result.summary())
    console.print(report(result.violations))
    console.print(f"service logs: {stack.data_dir / 'logs'}")
    raise typer.Exit(0 if result.ok else 1)


def main() -> None:
    app()
