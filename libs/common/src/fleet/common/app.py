"""The app factory: one call turns service modules into a FastAPI app with the service defaults.

A service describes itself as a `ServiceModule` (its schema, tables, routers, migrations and
start-up hook). `create_app([user, vehicle, trip, billing])` is the embedded platform;
`create_app([vehicle])` is the vehicle service on its own. Same code, other adapters.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from sqlalchemy import MetaData, Table

from fleet.common import deadletters, migrations, tracing
from fleet.common.auth import TokenIssuer, TokenVerifier, load_keys
from fleet.common.breaker import BreakerRegistry
from fleet.common.breaker import router as breakers_router
from fleet.common.config import Settings
from fleet.common.db import Database
from fleet.common.errors import NotFoundError
from fleet.common.http import ServiceClient, Upstreams
from fleet.common.lean import LeanDispatch, lean_routes
from fleet.common.logging import configure_logging, get_logger
from fleet.common.messaging import InMemoryBus, MessageBus
from fleet.common.metrics import HttpMetrics
from fleet.common.middleware import RequestContextMiddleware
from fleet.common.observe import MessagingGauges
from fleet.common.openapi import document_problems
from fleet.common.outbox import OutboxRelay, purge_inbox
from fleet.common.problems import install_problem_handlers
from fleet.common.runtime import ServiceRuntime, SubscriptionsFactory, every

log = get_logger("fleet.app")
INBOX_PURGE_S = 600.0  # how often each service forgets inbox rows past their retention

HealthCheck = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ServiceModule:
    """What a service contributes to an app. Built by each service's `app.py`."""

    name: str
    schema: str
    metadata: MetaData
    routers: Sequence[APIRouter]
    migrations: Path
    startup: Callable[[ServiceRuntime], Awaitable[None]] | None = None
    shutdown: Callable[[ServiceRuntime], Awaitable[None]] | None = None
    subscriptions: SubscriptionsFactory | None = None

    def table(self, name: str) -> Table | None:
        """The module's table called `name` (e.g. its `outbox`), if it has one."""
        return self.metadata.tables.get(f"{self.schema}.{name}")


@dataclass
class FleetState:
    """Everything the app built in its lifespan; lives on `app.state.fleet`."""

    settings: Settings
    registry: CollectorRegistry
    verifier: TokenVerifier
    issuer: TokenIssuer | None
    bus: MessageBus
    gauges: MessagingGauges
    redis: Redis | None = None
    services: dict[str, ServiceRuntime] = field(default_factory=dict)
    checks: dict[str, HealthCheck] = field(default_factory=dict)
    queues: set[str] = field(default_factory=set)
    breakers: BreakerRegistry = field(default_factory=BreakerRegistry)
    upstreams: Upstreams | None = None


def runtime(request: Request, service: str) -> ServiceRuntime:
    """The named service's runtime for this request's app."""
    state: FleetState = request.app.state.fleet
    return state.services[service]


def upstream(request: Request, service: str) -> ServiceClient:
    """This app's client of another service: in process when that service is part of the app
    (embedded), else at its `FLEET_<SERVICE>_URL` (distributed)."""
    state: FleetState = request.app.state.fleet
    if state.upstreams is None:
        raise RuntimeError("the app has no upstream clients")
    return state.upstreams.client(service)


def create_app(
    modules: Sequence[ServiceModule],
    settings: Settings | None = None,
    *,
    migrate_on_startup: bool = False,
    access_log: bool = True,
    title: str | None = None,
) -> FastAPI:
    """Build the app for `modules` with health, readiness, metrics, problem+json and auth."""
    settings = settings or Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    registry = CollectorRegistry()
    http_metrics = HttpMetrics(registry)
    gauges = MessagingGauges(registry)
    names = [m.name for m in modules]
    breakers = BreakerRegistry(registry, namespace="+".join(names))
    traced = tracing.setup_tracing(settings, tracing.service_name(names))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys = load_keys(settings)
        issuer = (
            TokenIssuer(
                keys.private_pem, issuer=settings.jwt_issuer, ttl_seconds=settings.jwt_ttl_seconds
            )
            if keys.private_pem
            else None
        )
        state = FleetState(
            settings=settings,
            registry=registry,
            verifier=TokenVerifier(keys.public_pem, issuer=settings.jwt_issuer),
            issuer=issuer,
            bus=make_bus(settings, names),
            gauges=gauges,
            breakers=breakers,
        )
        app.state.fleet = state
        async with AsyncExitStack() as stack:
            stack.callback(tracing.flush)  # runs last: the spans of the shutdown too
            # Shutdown runs in reverse: background tasks, relays, bus (consumers), databases.
            for module in modules:
                db = Database(
                    settings.database_url_for(module.name), module.schema, echo=settings.sql_echo
                )
                stack.push_async_callback(db.dispose)
                tracing.instrument_database(db)
                if migrate_on_startup:
                    await migrations.upgrade(db, module.migrations)
                state.services[module.name] = ServiceRuntime(
                    module,
                    settings,
                    db,
                    state,
                    bus=state.bus,
                    outbox=module.table("outbox"),
                    inbox=module.table("inbox"),
                )
                state.checks[f"{module.name}.db"] = db.ping
            await state.bus.start()
            stack.push_async_callback(state.bus.close)
            state.checks["bus"] = state.bus.ping
            if settings.redis_url:
                state.redis = make_redis(settings.redis_url)
                stack.push_async_callback(state.redis.aclose)
                tracing.instrument_redis(state.redis)
                state.checks["redis"] = _redis_ping(state.redis)
            breakers.bind_redis(state.redis, settings.redis_prefix)
            state.upstreams = Upstreams(settings, breakers, app=app, local=names)
            stack.push_async_callback(state.upstreams.aclose)
            for rt in state.services.values():
                if rt.outbox is not None:
                    rt.relay = OutboxRelay(rt.db, state.bus, rt.outbox)
                    await rt.relay.start()
                    stack.push_async_callback(rt.relay.stop)
                if rt.inbox is not None:
                    retention = dt.timedelta(hours=settings.inbox_retention_hours)
                    rt.spawn(
                        "inbox-purge",
                        partial(
                            every, INBOX_PURGE_S, partial(purge_inbox, rt.db, rt.inbox, retention)
                        ),
                    )
            for rt in state.services.values():
                stack.push_async_callback(rt.stop_tasks)
                if rt.module.startup:
                    await rt.module.startup(rt)
                if rt.module.shutdown:
                    stack.push_async_callback(rt.module.shutdown, rt)
            bus_system = tracing.messaging_system(state.bus)
            for rt in state.services.values():
                for sub in rt.module.subscriptions(rt) if rt.module.subscriptions else ():
                    state.queues.add(sub.queue)
                    await state.bus.subscribe(
                        sub.queue,
                        sub.bindings,
                        tracing.traced_handler(
                            sub.queue, sub.handler, system=bus_system, service=rt.name
                        ),
                        exchange=sub.exchange,
                        prefetch=sub.prefetch,
                        max_retries=sub.max_retries,
                    )
            if settings.gc_freeze:
                # What startup built lives as long as the process: out of the collector's full
                # passes, whose length over this heap showed as p99 latency (docs/performance.md).
                gc.collect()
                gc.freeze()
            log.info("started", services=names, env=settings.env)
            yield
        log.info("stopped", services=names)

    app = FastAPI(
        title=title or ("Fleet platform" if len(modules) > 1 else f"Fleet {names[0]} service"),
        version="0.1.0",
        lifespan=lifespan,
        responses={
            422: {"description": "Validation error (problem+json)"},
        },
        **tracing.fastapi_options(traced),
    )
    install_problem_handlers(app)
    # Innermost: lean routes still get request ids, metrics, the access log and problem answers.
    app.add_middleware(
        LeanDispatch,
        routes=lean_routes(r for module in modules for r in module.routers),
        traced=traced,
    )
    app.add_middleware(
        RequestContextMiddleware,
        metrics=http_metrics,
        max_body_bytes=settings.max_body_bytes,
        access_log=access_log,
    )
    if traced:
        tracing.trace_requests(app)
    routers = [router for module in modules for router in module.routers]
    routers += [_ops_router(names), deadletters.router, breakers_router]
    for router in routers:
        app.include_router(router)
    document_problems(app, routers)
    return app


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(description="`ok`, or `down: <error>`, per dependency")


def _ops_router(names: list[str]) -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "services": names}

    @router.get(
        "/ready",
        summary="Readiness: every dependency answers",
        response_model=ReadyOut,
        responses={503: {"model": ReadyOut, "description": "A dependency is down"}},
    )
    async def ready(request: Request) -> JSONResponse:
        state: FleetState = request.app.state.fleet
        results: dict[str, str] = {}
        for name, check in state.checks.items():
            try:
                await check()
                results[name] = "ok"
            except Exception as exc:  # a dependency down is an answer, not an error
                results[name] = f"down: {type(exc).__name__}"
        ok = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ready" if ok else "unavailable", "checks": results},
            status_code=200 if ok else 503,
        )

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics(request: Request) -> Response:
        state: FleetState = request.app.state.fleet
        relays = {n: rt.relay for n, rt in state.services.items() if rt.relay is not None}
        await state.gauges.refresh(relays, state.bus, sorted(state.queues))
        return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def make_bus(settings: Settings, names: list[str]) -> MessageBus:
    """RabbitMQ when `AMQP_URL` is set, else the in-process bus (embedded mode)."""
    if settings.amqp_url:
        from fleet.common.messaging.rabbit import RabbitBus

        return RabbitBus(settings.amqp_url, service="+".join(names))
    return InMemoryBus()


def make_redis(url: str) -> Redis:
    """A Redis client with short timeouts: a slow or dead Redis must cost milliseconds, not
    seconds (callers treat Redis as an optimisation, never as the source of truth)."""
    return Redis.from_url(
        url,
        socket_timeout=0.25,
        socket_connect_timeout=0.25,
        health_check_interval=30,
        max_connections=100,
    )


def _redis_ping(redis: Redis) -> HealthCheck:
    async def ping() -> None:
        await redis.ping()

    return ping


def not_found(kind: str, ident: object) -> NotFoundError:
    """The 404 used for missing resources and for other riders' resources alike."""
    return NotFoundError(f"{kind} {ident} not found")
