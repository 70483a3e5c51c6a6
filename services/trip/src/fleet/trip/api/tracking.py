"""GET /trips/{id}/tracking/stream: the trip's positions live, as Server-Sent Events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from fleet.common.auth import CurrentPrincipal
from fleet.trip.api.deps import RuntimeDep
from fleet.trip.api.schemas import TrackingPointOut
from fleet.trip.service.tracking_hub import Ended
from fleet.trip.service.tracking_stream import Heartbeat, Update, follow

router = APIRouter(prefix="/trips", tags=["trip"])

EVENT_STREAM = "text/event-stream"


def sse(update: Update) -> bytes:
    """One SSE frame: `position` events, an `end` event, comments as heartbeats."""
    if isinstance(update, Heartbeat):
        return b": heartbeat\n\n"
    if isinstance(update, Ended):
        return b"event: end\ndata: " + orjson.dumps({"status": update.status}) + b"\n\n"
    body = TrackingPointOut.of(update).model_dump(mode="json")
    return f"id: {update.id}\nevent: position\ndata: ".encode() + orjson.dumps(body) + b"\n\n"


async def _frames(updates: AsyncIterator[Update]) -> AsyncIterator[bytes]:
    yield b"retry: 3000\n\n"
    async for update in updates:
        yield sse(update)


@router.get(
    "/{trip_id}/tracking/stream",
    summary="The vehicle's positions live (Server-Sent Events; owner or operator)",
    description=(
        "`text/event-stream`: first the stored positions, then each new one as it arrives "
        "(`event: position`, data as in GET …/tracking), `: heartbeat` comments while idle, "
        "and `event: end` with the trip's final status when it completes or is cancelled."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {EVENT_STREAM: {}}},
        404: {"description": "No such trip, or another rider's"},
    },
)
async def stream_tracking(
    trip_id: uuid.UUID, rt: RuntimeDep, who: CurrentPrincipal
) -> StreamingResponse:
    updates = await follow(rt, who, trip_id)
    return StreamingResponse(
        _frames(updates),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
