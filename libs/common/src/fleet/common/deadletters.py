"""Operator endpoints over the dead-letter queues of the queues this app consumes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from fleet.common.auth import OperatorPrincipal
from fleet.common.errors import NotFoundError
from fleet.common.messaging import DeadLetter, MessageBus
from fleet.common.openapi import Responses

router = APIRouter(prefix="/dead-letters", tags=["ops"])

UNKNOWN_QUEUE: Responses = {404: {"description": "This service consumes no such queue"}}


class DeadLetterOut(BaseModel):
    id: str
    queue: str
    handler: str
    error: str
    attempts: int
    dead_at: dt.datetime
    event_id: uuid.UUID | None
    event_type: str | None
    body_preview: str = Field(description="The first 500 characters of the raw body")

    @classmethod
    def of(cls, d: DeadLetter) -> DeadLetterOut:
        return cls(
            id=d.id,
            queue=d.queue,
            handler=d.handler,
            error=d.error,
            attempts=d.attempts,
            dead_at=d.dead_at,
            event_id=d.envelope.event_id if d.envelope else None,
            event_type=d.envelope.event_type if d.envelope else None,
            body_preview=d.body[:500].decode("utf-8", "replace"),
        )


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, max_length=1000, description="Dead letters to replay; all of them if omitted."
    )


class ReplayOut(BaseModel):
    replayed: int


class DepthOut(BaseModel):
    queue: str
    ready: int = Field(description="Messages waiting in the queue itself")
    dead: int = Field(description="Messages in its dead-letter queue")


def _bus(request: Request, queue: str) -> MessageBus:
    queues: set[str] = request.app.state.fleet.queues
    if queue not in queues:
        raise NotFoundError(f"this service consumes no queue {queue!r}; known: {sorted(queues)}")
    bus: MessageBus = request.app.state.fleet.bus
    return bus


@router.get("", summary="The queues whose dead letters this service can show")
async def queues(request: Request, _op: OperatorPrincipal) -> list[str]:
    return sorted(request.app.state.fleet.queues)


@router.get(
    "/{queue}", summary="Dead letters of a queue (they stay in place)", responses=UNKNOWN_QUEUE
)
async def list_dead_letters(
    queue: str,
    request: Request,
    _op: OperatorPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[DeadLetterOut]:
    return [DeadLetterOut.of(d) for d in await _bus(request, queue).dead_letters(queue, limit)]


@router.get(
    "/{queue}/depth",
    summary="How many messages wait in a queue and in its dead-letter queue",
    responses=UNKNOWN_QUEUE,
)
async def depth(queue: str, request: Request, _op: OperatorPrincipal) -> DepthOut:
    found = await _bus(request, queue).queue_depth(queue)
    return DepthOut(queue=queue, ready=found.ready, dead=found.dead)


@router.post(
    "/{queue}/replay", summary="Move dead letters back to their queue", responses=UNKNOWN_QUEUE
)
async def replay(
    queue: str, request: Request, _op: OperatorPrincipal, body: ReplayIn | None = None
) -> ReplayOut:
    count = await _bus(request, queue).replay_dead_letters(queue, body.ids if body else None)
    return ReplayOut(replayed=count)
