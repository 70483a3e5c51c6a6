"""docs/asyncapi.yaml is current and valid AsyncAPI 3.0, its senders and receivers form a closed
graph, and every message the running platform publishes fits it (contract tests)."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from typer.testing import CliRunner

import fleet.common.app
from fleet.common.app import FleetState, create_app
from fleet.common.messaging import (
    EXCHANGES,
    Envelope,
    ExchangeName,
    InMemoryBus,
    default_registry,
    topic_matches,
)
from fleet.common.testing import app_client, local_settings
from fleet.contracts import booking
from fleet.contracts.events import VehicleTelemetryReported
from fleet.contracts.producers import DEVICE, OUTWARD, PRODUCERS, ROUTING_KEY_VARIANTS
from fleet.contracts.queues import QUEUES
from fleet.platform.asyncapi import OUTWARD_TAG, render
from fleet.platform.cli import app as cli
from fleet.platform.client import Platform, User
from fleet.platform.services import SERVICE_NAMES, all_modules

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL_SCHEMA = Path(__file__).parent / "asyncapi-spec" / "3.0.0.json"
DOC_URI = "urn:fleet:asyncapi"
EXCHANGE_IDS: dict[str, ExchangeName] = {v: k for k, v in EXCHANGES.items()}

Document = dict[str, Any]


# --- reading the document ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def document() -> Document:
    """What `fleet asyncapi` prints, parsed (docs/asyncapi.yaml, a test below checks)."""
    doc: Document = yaml.safe_load(render())
    return doc


def exchange_of(channel: dict[str, Any]) -> ExchangeName:
    return EXCHANGE_IDS[channel["bindings"]["amqp"]["exchange"]["name"]]


def channel_for(document: Document, exchange: str, routing_key: str) -> str | None:
    """The id of the channel a message published with `routing_key` on `exchange` is on."""
    channels: dict[str, dict[str, Any]] = document["channels"]
    for channel_id, channel in channels.items():
        words = re.split(r"\{\w+\}", channel["address"])
        address = re.compile("[^.]+".join(re.escape(w) for w in words) + r"\Z")
        if exchange_of(channel) == exchange and address.match(routing_key):
            return channel_id
    return None


def senders(document: Document, channel_id: str) -> set[str]:
    """Who the document says sends on a channel (the tags of its send operations)."""
    return {
        tag["name"]
        for op in document["operations"].values()
        if op["action"] == "send" and op["channel"]["$ref"] == f"#/channels/{channel_id}"
        for tag in op["tags"]
    }


def resolve(document: Document, ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in references(v)]
    if isinstance(node, list):
        return [r for v in node for r in references(v)]
    return []


# --- the document itself ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncapi_schema() -> Draft7Validator:
    """The official AsyncAPI 3.0.0 JSON schema (vendored: its $refs all resolve inside it)."""
    schema = json.loads(OFFICIAL_SCHEMA.read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def test_docs_asyncapi_yaml_is_what_the_code_generates() -> None:
    written = (ROOT / "docs" / "asyncapi.yaml").read_text()
    assert written == render(), (
        "docs/asyncapi.yaml is stale: run `uv run fleet asyncapi > docs/asyncapi.yaml`"
    )


def test_fleet_asyncapi_prints_the_document() -> None:
    result = CliRunner().invoke(cli, ["asyncapi"])
    assert result.exit_code == 0, result.output
    assert result.stdout == render()


def test_the_document_is_valid_asyncapi_3(
    document: Document, asyncapi_schema: Draft7Validator
) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in asyncapi_schema.iter_errors(document)
    ]
    assert errors == []


@pytest.mark.parametrize(
    "breaks",
    [
        lambda d: d["operations"]["trip.send.trip.completed"].update(action="publish"),
        lambda d: d["channels"]["trip.completed"].update(queue="billing.events"),
        lambda d: d["channels"]["trip.started"]["bindings"]["amqp"].update(exchange="x"),
        lambda d: d["components"]["schemas"]["Point"].update(type="point"),
        lambda d: d["components"]["messages"]["TripStarted"].update(payload=[]),
    ],
    ids=["operation action", "channel field", "amqp binding", "schema type", "payload"],
)
def test_the_official_schema_rejects_a_broken_document(
    document: Document, asyncapi_schema: Draft7Validator, breaks: Callable[[Document], None]
) -> None:
    broken = copy.deepcopy(document)
    breaks(broken)
    assert not asyncapi_schema.is_valid(broken)


def test_every_reference_resolves_and_operations_carry_their_channels_messages(
    document: Document,
) -> None:
    for ref in references(document):
        resolve(document, ref)  # a KeyError names the dangling reference
    for op_id, op in document["operations"].items():
        for message in op["messages"]:
            assert message["$ref"].startswith(op["channel"]["$ref"] + "/messages/"), op_id


def test_every_message_class_has_its_channels_and_declared_senders(document: Document) -> None:
    routing_keys = {cls.event_type for cls in default_registry} | {booking.REPLY_KEY}
    assert set(PRODUCERS) == routing_keys
    assert set(ROUTING_KEY_VARIANTS) | set(OUTWARD) <= routing_keys
    assert {s for sent_by in PRODUCERS.values() for s in sent_by} <= {*SERVICE_NAMES, DEVICE}
    variants = {v for vs in ROUTING_KEY_VARIANTS.values() for v in vs}
    assert {c["address"] for c in document["channels"].values()} == routing_keys | variants
    for channel_id, channel in document["channels"].items():
        (message,) = channel["messages"].values()
        routing_key = resolve(document, message["$ref"])["name"]
        assert senders(document, channel_id) == set(PRODUCERS[routing_key]), channel_id


def test_every_consumer_binding_matches_a_channel_someone_sends_on(document: Document) -> None:
    sent = [
        (exchange_of(channel), re.sub(r"\{\w+\}", "x", channel["address"]))
        for channel_id, channel in document["channels"].items()
        if senders(document, channel_id)
    ]
    waiting_in_vain = [
        (queue.name, pattern)
        for queue in QUEUES
        for pattern in queue.bindings
        if not any(
            exchange == queue.exchange and topic_matches(pattern, key) for exchange, key in sent
        )
    ]
    assert waiting_in_vain == []


def test_every_channel_sent_on_has_a_receiver_or_is_documented_as_outward(
    document: Document,
) -> None:
    received = {
        op["channel"]["$ref"].removeprefix("#/channels/")
        for op in document["operations"].values()
        if op["action"] == "receive"
    }
    outward = {
        channel_id
        for channel_id, channel in document["channels"].items()
        if any(tag["name"] == OUTWARD_TAG for tag in channel.get("tags", []))
    }
    sent = {channel_id for channel_id in document["channels"] if senders(document, channel_id)}
    assert sent - received == outward
    assert not outward & received
    # and the table of outward events names none that a queue is bound to
    assert {document["channels"][c]["address"] for c in outward} == set(OUTWARD)


# --- the messages of a running platform -------------------------------------------------------

# Formats pydantic's schemas use, checked strictly (jsonschema leaves them unchecked unless
# optional packages are installed).
FORMATS = FormatChecker(formats=())


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    return not isinstance(value, str) or str(uuid.UUID(value)) == value.lower()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return "T" in value.upper() and dt.datetime.fromisoformat(value).tzinfo is not None


PayloadCheck = Callable[[str, Any], list[str]]


@pytest.fixture(scope="module")
def payload_errors(document: Document) -> PayloadCheck:
    """`check(channel_id, body)`: why `body` fits no message payload of the channel ([] if fine)."""
    registry = Registry().with_resource(
        DOC_URI, Resource.from_contents(document, default_specification=DRAFT7)
    )

    def check(channel_id: str, body: Any) -> list[str]:
        problems: list[str] = []
        for message in document["channels"][channel_id]["messages"].values():
            pointer = message["$ref"].removeprefix("#")
            validator = Draft7Validator(
                {"$ref": f"{DOC_URI}#{pointer}/payload"}, registry=registry, format_checker=FORMATS
            )
            errors = [
                f"{'/'.join(map(str, e.absolute_path)) or '<body>'}: {e.message[:200]}"
                for e in validator.iter_errors(body)
            ]
            if not errors:
                return []
            problems += errors
        return problems

    return check


@dataclass(frozen=True)
class Published:
    exchange: ExchangeName
    routing_key: str
    body: bytes


class RecordingBus(InMemoryBus):
    """The in-memory bus of embedded mode, keeping a copy of every message published on it."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[Published] = []

    async def publish_raw(
        self, body: bytes, routing_key: str, *, exchange: ExchangeName = "events"
    ) -> None:
        self.published.append(Published(exchange, routing_key, body))
        await super().publish_raw(body, routing_key, exchange=exchange)

    async def seen(self, routing_key: str) -> bool:
        return any(p.routing_key == routing_key for p in self.published)


@dataclass
class Embedded:
    app: FastAPI
    api: Platform
    bus: RecordingBus


@pytest.fixture
async def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Embedded]:
    """The whole platform in-process as `fleet run` builds it: SQLite files, the in-memory bus."""
    bus = RecordingBus()
    monkeypatch.setattr(fleet.common.app, "make_bus", lambda _settings, _names: bus)
    settings = local_settings(tmp_path)
    app = create_app(all_modules(), settings, migrate_on_startup=True, access_log=False)
    async with app_client(app) as http:
        yield Embedded(app, Platform(http), bus)


async def until(probe: Callable[[], Awaitable[object]], expected: object = True) -> None:
    """Poll `probe()` until it returns `expected` (for at most 10 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while (last := await probe()) != expected:
        assert loop.time() < deadline, f"still {last!r}, not {expected!r}"
        await asyncio.sleep(0.02)


async def quiet(platform: Embedded, for_s: float = 0.3) -> None:
    """Wait until every outbox is drained and nothing was published for `for_s` seconds."""
    state: FleetState = platform.app.state.fleet
    relays = [rt.relay for rt in state.services.values() if rt.relay is not None]
    seen = -1
    while seen != len(platform.bus.published):
        seen = len(platform.bus.published)
        await asyncio.sleep(for_s)
        backlogs = await asyncio.gather(*(relay.backlog() for relay in relays))
        if any(rows for rows, _ in backlogs):
            seen = -1


def device_telemetry(vehicle_id: str) -> bytes:
    """A device's message, as an on-board unit builds it (bench/telemetry.py does the same)."""
    now = dt.datetime.now(dt.UTC)
    readings = [
        {
            "lat": 37.5665 + i / 1000,
            "lon": 126.978,
            "speed_kph": 30.0,
            "battery_pct": 80.0,
            "recorded_at": (now - dt.timedelta(seconds=3 - i)).isoformat(),
        }
        for i in range(3)
    ]
    message = VehicleTelemetryReported.model_validate(
        {"vehicle_id": vehicle_id, "readings": readings}
    )
    envelope = message.to_envelope(
        producer=DEVICE, aggregate_type="vehicle", aggregate_id=vehicle_id
    )
    return envelope.encode()


async def ride(
    platform: Embedded, op: User, rider: User, distance_km: float, *, telemetry: bool = False
) -> dict[str, Any]:
    """Book, start and complete a trip; the completed trip."""
    api = platform.api
    trip = await api.settled(rider, (await api.book(rider))["id"])
    assert trip["status"] == "confirmed", trip
    r = await api.http.post(f"/trips/{trip['id']}/start", headers=op.headers)
    assert r.status_code == 200, r.text
    if telemetry:
        # the vehicle reports on its own routing key; vehicle passes its positions to trip
        body = device_telemetry(trip["vehicle_id"])
        await platform.bus.publish_raw(body, f"vehicle.telemetry.{trip['vehicle_id']}")
        await until(lambda: platform.bus.seen("vehicle.positions"))
    r = await api.http.post(
        f"/trips/{trip['id']}/complete",
        json={"distance_km": distance_km, "duration_min": 2 * distance_km},
        headers=op.headers,
    )
    assert r.status_code == 200, r.text
    return trip


async def invoice_status(platform: Embedded, rider: User, trip_id: str) -> str | None:
    page = await platform.api.get(rider, "/invoices")
    return next((i["status"] for i in page["items"] if i["trip_id"] == trip_id), None)


# What the flow below makes the platform say: every channel but the saga's rarer compensations
# (after a failed confirmation or trip creation, which no API call provokes) and the plain
# telemetry key (the test's device uses its per-vehicle key).
EXERCISED = {
    *PRODUCERS,
    "vehicle.telemetry.by-vehicle_id",
} - {
    booking.ReleaseVehicle.event_type,
    booking.SendCancellation.event_type,
    VehicleTelemetryReported.event_type,
}


async def test_every_message_of_a_booking_and_trip_lifecycle_fits_the_document(
    embedded: Embedded, document: Document, payload_errors: PayloadCheck
) -> None:
    api = embedded.api
    op = await api.operator()
    # no vehicle yet: the credits are held, then released (compensation); the trip is rejected
    dana = await api.rider(credits_cents=10_000)
    rejected = await api.settled(dana, (await api.book(dana))["id"])
    assert rejected["status"] == "rejected", rejected

    tariff = {"base_cents": 300, "per_km_cents": 100, "per_min_cents": 20}
    r = await api.http.put("/tariffs/Ioniq5", json=tariff, headers=op.headers)
    assert r.status_code == 200, r.text
    for n in range(3):
        await api.vehicle(op, n)

    # a paid ride: invoice issued, credits captured, invoice paid; telemetry during it
    ada = await api.rider(credits_cents=10_000)
    paid = await ride(embedded, op, ada, 5.0, telemetry=True)
    await until(lambda: invoice_status(embedded, ada, paid["id"]), "paid")

    # a ride longer than the rider's credits: the capture fails, so does the invoice
    bob = await api.rider(credits_cents=1_000)
    unpaid = await ride(embedded, op, bob, 50.0)
    await until(lambda: invoice_status(embedded, bob, unpaid["id"]), "failed")

    # a cancelled booking
    cyd = await api.rider(credits_cents=10_000)
    trip = await api.settled(cyd, (await api.book(cyd))["id"])
    r = await api.http.post(f"/trips/{trip['id']}/cancel", headers=cyd.headers)
    assert r.status_code == 200, r.text
    await until(lambda: held_cents(api, cyd), 0)
    await quiet(embedded)

    problems: list[str] = []
    sent_by: dict[str, set[str]] = {}
    for p in embedded.bus.published:
        envelope = Envelope.decode(p.body)
        where = f"{p.exchange}/{p.routing_key} from {envelope.producer}"
        channel_id = channel_for(document, p.exchange, p.routing_key)
        if channel_id is None:
            problems.append(f"{where}: no channel in docs/asyncapi.yaml")
            continue
        sent_by.setdefault(channel_id, set()).add(envelope.producer)
        problems += [f"{where}: {e}" for e in payload_errors(channel_id, json.loads(p.body))]
    assert problems == []
    assert set(sent_by) >= EXERCISED, f"not exercised: {sorted(EXERCISED - set(sent_by))}"
    # who really sent each message is who the document (the PRODUCERS table) says
    assert sent_by == {channel_id: senders(document, channel_id) for channel_id in sent_by}


async def held_cents(api: Platform, rider: User) -> int:
    return (await api.wallet(rider))["held_cents"]


def test_a_payload_that_breaks_the_contract_is_caught(
    document: Document, payload_errors: PayloadCheck
) -> None:
    """The check above is not vacuous: each kind of break is reported."""
    trip_id = str(uuid.uuid4())
    envelope = booking.ReleaseVehicle(trip_id=uuid.UUID(trip_id)).to_envelope(
        producer="trip", aggregate_type="saga", aggregate_id=trip_id
    )
    good = json.loads(envelope.encode())
    good["data"] = {
        "saga_id": trip_id,
        "saga_name": booking.SAGA_NAME,
        "step": "reserve-vehicle",
        "phase": "compensation",
        "attempt": 1,
        "command_type": "vehicle.release-vehicle",
        "payload": {"trip_id": trip_id},
        "reply_to": booking.REPLY_KEY,
    }
    channel = "vehicle.release-vehicle"
    assert payload_errors(channel, good) == []
    breaks: Sequence[Callable[[dict[str, Any]], None]] = [
        lambda b: b["data"]["payload"].pop("trip_id"),
        lambda b: b["data"]["payload"].update(trip_id="not-a-uuid"),
        lambda b: b["data"].update(command_type="vehicle.reserve-vehicle"),
        lambda b: b["data"].update(extra=1),  # SagaCommand forbids unknown fields
        lambda b: b.update(kind="event"),
        lambda b: b.update(occurred_at="2026-01-01T00:00:00"),  # no offset
        lambda b: b.pop("event_id"),
    ]
    for n, change in enumerate(breaks):
        broken = copy.deepcopy(good)
        change(broken)
        assert payload_errors(channel, broken), n


async def test_the_running_services_subscribe_exactly_the_queues_of_the_contracts(
    embedded: Embedded,
) -> None:
    state: FleetState = embedded.app.state.fleet
    subscribed = {
        (rt.name, s.queue, s.exchange, s.bindings)
        for rt in state.services.values()
        for s in (rt.module.subscriptions(rt) if rt.module.subscriptions else ())
    }
    declared = {(q.service, q.name, q.exchange, q.bindings) for q in QUEUES}
    assert subscribed == declared
