"""The console's pages: dashboard, vehicles and a vehicle, trips, a trip and its saga, invoices
and dead letters. Each is a few API calls and a template; lists page with the API's cursors."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from fleet.platform.console._api import PlatformApi, attempt_all
from fleet.platform.console._app import HERE, api, render
from fleet.platform.console._pager import pager

PAGE_SIZE = "25"
VEHICLE_STATUSES = ("available", "reserved", "in_trip", "maintenance", "offline")
SETTABLE_STATUSES = ("available", "maintenance", "offline")  # the rest belong to bookings
TRIP_STATUSES = ("pending", "confirmed", "in_progress", "completed", "rejected", "cancelled")
QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def not_found(request: Request, what: str) -> Response:
    return render(request, "error.html", 404, message=f"No such {what}.", status=404)


def valid_id(value: str) -> str | None:
    """`value` as a canonical UUID, or None: only ids ever reach an API path."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def queue_path(queue: str) -> str | None:
    return f"/dead-letters/{quote(queue, safe='')}" if QUEUE_NAME.fullmatch(queue) else None


async def _listing(
    request: Request, path: str, **filters: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """One page of `path` with `filters`, and its pager links."""
    query = request.query_params
    limit = query.get("limit") or PAGE_SIZE
    page = await api(request).get(path, cursor=query.get("cursor"), limit=limit, **filters)
    kept = {**filters, "limit": limit if limit != PAGE_SIZE else ""}
    return page, pager(request, path, page, **kept)


async def queue_counts(platform: PlatformApi) -> list[dict[str, Any]]:
    """Every queue the API shows dead letters of, with how many it holds (or why not)."""
    listed = await platform.get("/dead-letters")
    known = [(str(q), p) for q in listed if (p := queue_path(str(q))) is not None]
    answers = await attempt_all(*(platform.get(f"{p}/depth") for _q, p in known))
    rows = []
    for (queue, _path), (depth, error) in zip(known, answers, strict=True):
        count = depth.get("dead") if isinstance(depth, dict) else None
        rows.append({"queue": queue, "count": count, "error": error})
    return rows


async def dashboard(request: Request) -> Response:
    platform = api(request)
    (status, status_error), (days, days_error), (queues, queues_error) = await attempt_all(
        platform.get("/fleet/status"),
        platform.get("/analytics/trips/daily", days=14),
        queue_counts(platform),
    )
    totals = None
    if isinstance(days, list):
        totals = {
            "trips": sum(d.get("trips", 0) for d in days),
            "revenue_cents": sum(d.get("revenue_cents", 0) for d in days),
        }
    return render(
        request,
        "dashboard.html",
        status=status,
        status_error=status_error,
        days=days,
        days_error=days_error,
        totals=totals,
        queues=queues,
        queues_error=queues_error,
    )


async def vehicles(request: Request) -> Response:
    status = request.query_params.get("status", "")
    page, links = await _listing(request, "/vehicles", status=status)
    return render(
        request, "vehicles.html", page=page, links=links, status=status, statuses=VEHICLE_STATUSES
    )


async def vehicle(request: Request) -> Response:
    vehicle_id = valid_id(request.path_params["vehicle_id"])
    if vehicle_id is None:
        return not_found(request, "vehicle")
    found = await api(request).get(f"/vehicles/{vehicle_id}")
    return render(request, "vehicle.html", vehicle=found, settable=SETTABLE_STATUSES)


async def trips(request: Request) -> Response:
    status = request.query_params.get("status", "")
    page, links = await _listing(request, "/trips", status=status)
    return render(
        request, "trips.html", page=page, links=links, status=status, statuses=TRIP_STATUSES
    )


async def trip(request: Request) -> Response:
    trip_id = valid_id(request.path_params["trip_id"])
    if trip_id is None:
        return not_found(request, "trip")
    platform = api(request)
    found = await platform.get(f"/trips/{trip_id}", expand="vehicle")
    saga, saga_error = None, None
    saga_id = valid_id(str(found.get("saga_id") or ""))
    if saga_id:
        [(saga, saga_error)] = await attempt_all(platform.get(f"/sagas/{saga_id}"))
    return render(request, "trip.html", trip=found, saga=saga, saga_error=saga_error)


async def invoices(request: Request) -> Response:
    page, links = await _listing(request, "/invoices")
    return render(request, "invoices.html", page=page, links=links)


async def dead_letter_queues(request: Request) -> Response:
    return render(request, "queues.html", queues=await queue_counts(api(request)))


async def dead_letters(request: Request) -> Response:
    queue = request.path_params["queue"]
    path = queue_path(queue)
    if path is None:
        return not_found(request, "queue")
    limit = request.query_params.get("limit") or "50"
    letters = await api(request).get(path, limit=limit)
    return render(request, "dead_letters.html", queue=queue, letters=letters, limit=limit)


def routes() -> list[BaseRoute]:
    return [
        Route("/", dashboard),
        Route("/vehicles", vehicles),
        Route("/vehicles/{vehicle_id}", vehicle),
        Route("/trips", trips),
        Route("/trips/{trip_id}", trip),
        Route("/invoices", invoices),
        Route("/dead-letters", dead_letter_queues),
        Route("/dead-letters/{queue}", dead_letters),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
