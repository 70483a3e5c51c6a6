"""The vehicle service as a participant of the trip-booking saga, driven through the live app's bus.

Commands are published as the orchestrator publishes them; replies are captured on a test queue
bound to the orchestrator's reply key.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fleet.common.db import Database
from fleet.common.messaging import Envelope, InMemoryBus
from fleet.common.saga import Phase, SagaCommand, SagaReply
from fleet.contracts.booking import REPLY_KEY, SAGA_NAME, ReleaseVehicle, ReserveVehicle
from fleet.contracts.queues import VEHICLE_COMMANDS
from fleet.vehicle.adapters.tables import inbox, outbox

Headers = dict[str, str]
MakeVehicle = Callable[..., Awaitable[dict[str, Any]]]
Eventually = Callable[..., Awaitable[Any]]

BERLIN = {"lat": 52.52, "lon": 13.405}


class Orchestrator:
    """Sends saga commands to the vehicle service and collects its replies."""

    def __init__(self, bus: InMemoryBus, eventually: Eventually) -> None:
        self.bus = bus
        self.eventually = eventually
        self.replies: list[SagaReply] = []

    async def start(self) -> None:
        async def record(envelope: Envelope) -> None:
            self.replies.append(SagaReply.from_dict(envelope.data))

        await self.bus.subscribe("test.vehicle-replies", [REPLY_KEY], record, exchange="commands")

    def command(
        self,
        command_type: str,
        payload: dict[str, Any],
        *,
        saga_id: uuid.UUID | None = None,
        attempt: int = 1,
    ) -> SagaCommand:
        reserve = command_type == ReserveVehicle.event_type
        return SagaCommand(
            saga_id=saga_id or uuid.uuid4(),
            saga_name=SAGA_NAME,
            step="reserve-vehicle",
            phase=Phase.ACTION if reserve else Phase.COMPENSATION,
            attempt=attempt,
            command_type=command_type,
            payload=payload,
            reply_to=REPLY_KEY,
        )

    async def send(self, command: SagaCommand) -> None:
        envelope = Envelope.new(
            command.command_type,
            command.to_dict(),
            producer="trip",
            aggregate_type="saga",
            aggregate_id=command.saga_id,
            kind="command",
            reply_to=REPLY_KEY,
        )
        await self.bus.publish(envelope, exchange="commands")

    async def reply_to(self, command: SagaCommand) -> SagaReply:
        async def found() -> SagaReply | None:
            return next(
                (
                    r
                    for r in self.replies
                    if (r.saga_id, r.attempt, r.phase)
                    == (command.saga_id, command.attempt, command.phase)
                ),
                None,
            )

        reply: SagaReply = await self.eventually(found)
        return reply

    async def ask(self, command: SagaCommand) -> SagaReply:
        await self.send(command)
        return await self.reply_to(command)


@pytest.fixture
async def saga(bus: InMemoryBus, eventually: Eventually) -> Orchestrator:
    orchestrator = Orchestrator(bus, eventually)
    await orchestrator.start()
    return orchestrator


def reserve(
    trip_id: uuid.UUID, pickup: dict[str, float] | None = None, vehicle_id: str | None = None
) -> dict[str, Any]:
    return {
        "trip_id": str(trip_id),
        "rider_id": str(uuid.uuid4()),  # the saga's other data travels along; ignored here
        "pickup": pickup or BERLIN,
        "requested_vehicle_id": vehicle_id,
    }


async def vehicle(client: httpx.AsyncClient, op: Headers, vehicle_id: str) -> dict[str, Any]:
    r = await client.get(f"/vehicles/{vehicle_id}", headers=op)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_reserve_picks_the_nearest_available_vehicle(
    saga: Orchestrator, make_vehicle: MakeVehicle, client: httpx.AsyncClient, op: Headers
) -> None:
    await make_vehicle(lat=52.60, lon=13.405)  # ~9 km away
    near = await make_vehicle(lat=52.521, lon=13.405, model="Robo-2")
    busy = await make_vehicle(lat=52.5201, lon=13.405)
    await client.patch(f"/vehicles/{busy['id']}", json={"status": "offline"}, headers=op)
    trip = uuid.uuid4()

    reply = await saga.ask(saga.command(ReserveVehicle.event_type, reserve(trip)))

    assert reply.success, reply.error
    assert reply.result == {"vehicle_id": near["id"], "vehicle_model": "Robo-2"}
    got = await vehicle(client, op, near["id"])
    assert got["status"] == "reserved"


async def test_requested_vehicle_is_reserved_even_if_another_is_closer(
    saga: Orchestrator, make_vehicle: MakeVehicle, client: httpx.AsyncClient, op: Headers
) -> None:
    await make_vehicle()
    wanted = await make_vehicle(lat=52.55, lon=13.405)
    reply = await saga.ask(
        saga.command(ReserveVehicle.event_type, reserve(uuid.uuid4(), vehicle_id=wanted["id"]))
    )
    assert reply.success, reply.error
    assert reply.result["vehicle_id"] == wanted["id"]
    assert (await vehicle(client, op, wanted["id"]))["status"] == "reserved"


async def test_requested_vehicle_in_maintenance_is_a_failure_reply(
    saga: Orchestrator, make_vehicle: MakeVehicle, client: httpx.AsyncClient, op: Headers
) -> None:
    v = await make_vehicle()
    r = await client.patch(f"/vehicles/{v['id']}", json={"status": "maintenance"}, headers=op)
    assert r.status_code == 200, r.text
    reply = await saga.ask(
        saga.command(ReserveVehicle.event_type, reserve(uuid.uuid4(), vehicle_id=v["id"]))
    )
    assert not reply.success
    assert reply.error is not None
    assert "maintenance" in reply.error
    assert (await vehicle(client, op, v["id"]))["status"] == "maintenance"


async def test_requested_unknown_vehicle_is_a_failure_reply(saga: Orchestrator) -> None:
    missing = str(uuid.uuid4())
    reply = await saga.ask(
        saga.command(ReserveVehicle.event_type, reserve(uuid.uuid4(), vehicle_id=missing))
    )
    assert not reply.success
    assert reply.error is not None
    assert missing in reply.error


async def test_no_vehicle_nearby_is_a_failure_reply(
    saga: Orchestrator, make_vehicle: MakeVehicle, client: httpx.AsyncClient, op: Headers
) -> None:
    far = await make_vehicle(lat=48.137, lon=11.575)  # Munich, far from Berlin
    reply = await saga.ask(saga.command(ReserveVehicle.event_type, reserve(uuid.uuid4())))
    assert not reply.success
    assert reply.error == "no vehicle available"
    assert (await vehicle(client, op, far["id"]))["status"] == "available"


async def test_a_refused_reserve_closes_the_trip_so_a_late_reserve_is_refused_too(
    saga: Orchestrator, make_vehicle: MakeVehicle, client: httpx.AsyncClient, op: Headers
) -> None:
    trip = uuid.uuid4()
    first = saga.command(ReserveVehicle.event_type, reserve(trip))
    refused = await saga.ask(first)
    assert not refused.success
    assert refused.error == "no vehicle available"

    v = await make_vehicle()  # too late: the saga has failed and will never use it
    late = await saga.ask(first.model_copy(update={"attempt": 2}))

    assert not late.success
    assert late.error is not None
    assert "already over" in late.error
    assert (await vehicle(client, op, v["id"]))["status"] == "available"


async def test_resent_command_gets_the_same_vehicle(
    saga: Orchestrator, make_vehicle: MakeVehicle
) -> None:
    await make_vehicle(lat=52.521, lon=13.405)
    await make_vehicle(lat=52.522, lon=13.405)
    first = saga.command(ReserveVehicle.event_type, reserve(uuid.uuid4()))
    again = first.model_copy(update={"attempt": 2})

    one = await saga.ask(first)
    two = await saga.ask(again)

    assert one.success
    assert two.success
    assert two.result == one.result


async def test_two_trips_racing_for_the_only_vehicle_have_one_winner(
    saga: Orchestrator, make_vehicle: MakeVehicle, client: httpx.AsyncClient, op: Headers
) -> None:
    only = await make_vehicle()
    a, b = (saga.command(ReserveVehicle.event_type, reserve(uuid.uuid4())) for _ in range(2))

    await asyncio.gather(saga.send(a), saga.send(b))
    replies = await asyncio.gather(saga.reply_to(a), saga.reply_to(b))

    winners = [r for r in replies if r.success]
    losers = [r for r in replies if not r.success]
    assert len(winners) == 1
    assert winners[0].result["vehicle_id"] == only["id"]
    assert [r.error for r in losers] == ["no vehicle available"]
    assert (await vehicle(client, op, only["id"]))["status"] == "reserved"


async def test_release_frees_the_reserved_vehicle(
    saga: Orchestrator, make_vehicle: MakeVehicle, client: httpx.AsyncClient, op: Headers
) -> None:
    v = await make_vehicle()
    trip = uuid.uuid4()
    reserved = await saga.ask(saga.command(ReserveVehicle.event_type, reserve(trip)))
    assert reserved.success

    release = saga.command(ReleaseVehicle.event_type, {"trip_id": str(trip)}, attempt=1)
    reply = await saga.ask(release)

    assert reply.success
    assert reply.phase == Phase.COMPENSATION
    got = await vehicle(client, op, v["id"])
    assert got["status"] == "available"


async def test_release_of_an_unknown_trip_succeeds_and_changes_nothing(
    saga: Orchestrator, make_vehicle: MakeVehicle, client: httpx.AsyncClient, op: Headers
) -> None:
    v = await make_vehicle()
    held = await saga.ask(saga.command(ReserveVehicle.event_type, reserve(uuid.uuid4())))
    assert held.success
    reply = await saga.ask(saga.command(ReleaseVehicle.event_type, {"trip_id": str(uuid.uuid4())}))
    assert reply.success
    assert (await vehicle(client, op, v["id"]))["status"] == "reserved"


async def test_reserve_arriving_after_its_compensation_is_refused(
    saga: Orchestrator, make_vehicle: MakeVehicle, client: httpx.AsyncClient, op: Headers
) -> None:
    v = await make_vehicle()
    trip = uuid.uuid4()
    released = await saga.ask(saga.command(ReleaseVehicle.event_type, {"trip_id": str(trip)}))
    assert released.success

    late = await saga.ask(saga.command(ReserveVehicle.event_type, reserve(trip)))

    assert not late.success
    assert (await vehicle(client, op, v["id"]))["status"] == "available"


async def _count(db: Database, table: Any) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.mark.timeout(30)
async def test_garbage_commands_are_dead_lettered_and_change_nothing(
    saga: Orchestrator,
    bus: InMemoryBus,
    make_vehicle: MakeVehicle,
    client: httpx.AsyncClient,
    op: Headers,
    vehicle_db: Database,
    eventually: Eventually,
) -> None:
    v = await make_vehicle()
    not_a_command = Envelope.new(
        ReserveVehicle.event_type,
        {"trip_id": "'; DROP TABLE vehicle.vehicles; --"},
        producer="trip",
        aggregate_type="saga",
        aggregate_id="x",
        kind="command",
        reply_to=REPLY_KEY,
    )
    bad_payload = saga.command(ReserveVehicle.event_type, reserve(uuid.uuid4(), {"lat": 999.0}))
    await bus.publish_raw(b"\x00not json", ReserveVehicle.event_type, exchange="commands")
    await bus.publish(not_a_command, exchange="commands")
    await saga.send(bad_payload)

    async def three_dead() -> bool:
        return len(await bus.dead_letters(VEHICLE_COMMANDS.name)) == 3

    # Handler errors are retried with the bus's back-off (0.2 s, 1 s, 5 s) before dead-lettering.
    await eventually(three_dead, within=15.0)
    assert saga.replies == []
    assert (await vehicle(client, op, v["id"]))["status"] == "available"
    assert await _count(vehicle_db, inbox) == 0
    assert await _count(vehicle_db, outbox) == 0
