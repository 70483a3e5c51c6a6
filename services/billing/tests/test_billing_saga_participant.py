"""billing answers the booking saga's quote-fare command through the live app's bus."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from fleet.common.messaging import Envelope, InMemoryBus, MalformedMessage
from fleet.common.saga import Phase, SagaCommand, SagaReply
from fleet.common.testing import Account
from fleet.contracts.booking import REPLY_KEY, SAGA_NAME, QuoteFare
from fleet.contracts.queues import BILLING_COMMANDS, QueueSpec

# The conftest fixtures' types (a conftest cannot be imported under --import-mode=importlib).
Deliver = Callable[[QueueSpec, Envelope], Awaitable[None]]
SentByBilling = Callable[[str], Awaitable[list[Envelope]]]

SEOUL = {"lat": 37.5665, "lon": 126.978}
GANGNAM = {"lat": 37.4979, "lon": 127.0276}


def command(
    payload: dict[str, Any], *, saga_id: uuid.UUID | None = None, attempt: int = 1
) -> Envelope:
    saga_id = saga_id or uuid.uuid4()
    cmd = SagaCommand(
        saga_id=saga_id,
        saga_name=SAGA_NAME,
        step="quote-fare",
        phase=Phase.ACTION,
        attempt=attempt,
        command_type=QuoteFare.event_type,
        payload=payload,
        reply_to=REPLY_KEY,
    )
    return Envelope.new(
        cmd.command_type,
        cmd.to_dict(),
        producer="trip",
        aggregate_type="saga",
        aggregate_id=saga_id,
        kind="command",
        reply_to=REPLY_KEY,
    )


def ride(**extra: Any) -> dict[str, Any]:
    return {"trip_id": str(uuid.uuid4()), "pickup": SEOUL, "dropoff": GANGNAM, **extra}


async def test_quote_fare_replies_success_with_the_default_tariffs_fare(
    client: httpx.AsyncClient, operator: Account, bus: InMemoryBus, listen: Any, eventually: Any
) -> None:
    body = {"base_cents": 1000, "per_km_cents": 200, "per_min_cents": 10}
    await client.put("/tariffs/default", json=body, headers=operator.headers)
    await client.put(
        "/tariffs/Ioniq5",
        json={"base_cents": 0, "per_km_cents": 0, "per_min_cents": 0},
        headers=operator.headers,
    )
    expected = (
        await client.post(
            "/quotes", json={"pickup": SEOUL, "dropoff": GANGNAM}, headers=operator.headers
        )
    ).json()
    replies = await listen("commands", REPLY_KEY)
    sent = command(ride(vehicle_model="Ioniq5"))  # the saga's data may hold other keys

    await bus.publish(sent, exchange="commands")

    await eventually(lambda: len(replies.messages) == 1)
    envelope = replies.messages[0]
    reply = SagaReply.from_dict(envelope.data)
    assert reply.success is True
    assert reply.result == expected
    assert reply.result["fare_cents"] > 1000
    assert (reply.saga_id, reply.step, reply.phase, reply.attempt) == (
        uuid.UUID(sent.aggregate_id),
        "quote-fare",
        Phase.ACTION,
        1,
    )
    assert envelope.kind == "reply"
    assert envelope.causation_id == str(sent.event_id)
    assert envelope.correlation_id == sent.correlation_id


async def test_a_resent_quote_gets_the_same_answer_for_its_own_attempt(
    bus: InMemoryBus, listen: Any, eventually: Any
) -> None:
    replies = await listen("commands", REPLY_KEY)
    saga_id, data = uuid.uuid4(), ride()

    await bus.publish(command(data, saga_id=saga_id, attempt=1), exchange="commands")
    await bus.publish(command(data, saga_id=saga_id, attempt=2), exchange="commands")

    await eventually(lambda: len(replies.messages) == 2)
    answers = sorted(
        (SagaReply.from_dict(m.data) for m in replies.messages), key=lambda r: r.attempt
    )
    assert [r.attempt for r in answers] == [1, 2]
    assert all(r.success for r in answers)
    assert answers[0].result == answers[1].result


async def test_a_redelivered_command_is_answered_once(
    deliver: Deliver, sent_by_billing: SentByBilling
) -> None:
    sent = command(ride())

    await deliver(BILLING_COMMANDS, sent)
    await deliver(BILLING_COMMANDS, sent)

    replies = await sent_by_billing(REPLY_KEY)
    assert len(replies) == 1
    assert replies[0].causation_id == str(sent.event_id)
    assert SagaReply.from_dict(replies[0].data).success is True


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"trip_id": "not-a-uuid", "pickup": SEOUL, "dropoff": GANGNAM}, "trip_id"),
        ({"trip_id": str(uuid.uuid4()), "pickup": SEOUL}, "dropoff"),
        (ride(pickup={"lat": 91, "lon": 0}), "pickup.lat"),
        (ride(dropoff={"lat": 0, "lon": "east"}), "dropoff.lon"),
    ],
)
async def test_a_malformed_quote_command_fails_naming_the_field_and_is_not_answered(
    payload: dict[str, Any], field: str, deliver: Deliver, sent_by_billing: SentByBilling
) -> None:
    # Not a business refusal (ADR 0003): the bus retries, then dead-letters it for an operator.
    with pytest.raises(MalformedMessage, match=re.escape(field)):
        await deliver(BILLING_COMMANDS, command(payload))

    assert await sent_by_billing(REPLY_KEY) == []
