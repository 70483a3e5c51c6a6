"""Typed message schemas: registration, envelopes from messages, parsing back."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from fleet.common.messaging import Envelope, MalformedMessage, Message, MessageRegistry


class TripCompleted(Message):
    event_type = "trip.completed"

    trip_id: uuid.UUID
    fare: Decimal
    km: float


class TripCompletedV2(Message):
    event_type = "trip.completed"
    schema_version = 2

    trip_id: uuid.UUID
    fare_cents: int


class ReserveCredits(Message):
    event_type = "user.reserve-credits"
    kind = "command"

    amount: int


@pytest.fixture
def registry() -> MessageRegistry:
    r = MessageRegistry()
    for cls in (TripCompleted, TripCompletedV2, ReserveCredits):
        r.register(cls)
    return r


def wrap(message: Message) -> Envelope:
    return message.to_envelope(producer="trip", aggregate_type="trip", aggregate_id="t-1")


def test_message_round_trips_through_its_envelope(registry: MessageRegistry) -> None:
    sent = TripCompleted(trip_id=uuid.uuid4(), fare=Decimal("12.50"), km=3.5)

    envelope = Envelope.decode(wrap(sent).encode())

    assert envelope.event_type == "trip.completed"
    assert registry.parse(envelope) == sent
    assert registry.parse_as(envelope, TripCompleted).fare == Decimal("12.50")


def test_schema_version_selects_the_class(registry: MessageRegistry) -> None:
    envelope = wrap(TripCompletedV2(trip_id=uuid.uuid4(), fare_cents=1250))

    assert envelope.schema_version == 2
    assert isinstance(registry.parse(envelope), TripCompletedV2)


def test_command_class_makes_command_envelopes(registry: MessageRegistry) -> None:
    envelope = ReserveCredits(amount=5).to_envelope(
        producer="trip", aggregate_type="saga", aggregate_id="s", reply_to="trip.replies"
    )

    assert envelope.kind == "command"
    assert envelope.reply_to == "trip.replies"


def test_unknown_type_is_malformed(registry: MessageRegistry) -> None:
    envelope = Envelope.new(
        "trip.teleported", {}, producer="x", aggregate_type="t", aggregate_id="1"
    )

    with pytest.raises(MalformedMessage, match="unknown message type"):
        registry.parse(envelope)


def test_unknown_schema_version_is_malformed(registry: MessageRegistry) -> None:
    envelope = Envelope.new(
        "trip.completed", {}, producer="x", aggregate_type="t", aggregate_id="1", schema_version=9
    )

    with pytest.raises(MalformedMessage, match="v9"):
        registry.parse(envelope)


def test_data_that_does_not_fit_the_schema_is_malformed(registry: MessageRegistry) -> None:
    envelope = Envelope.new(
        "trip.completed",
        {"trip_id": "nope", "fare": "x", "km": 1},
        producer="x",
        aggregate_type="t",
        aggregate_id="1",
    )

    with pytest.raises(MalformedMessage, match="trip_id"):
        registry.parse(envelope)


def test_parse_as_refuses_another_class(registry: MessageRegistry) -> None:
    envelope = wrap(ReserveCredits(amount=1))

    with pytest.raises(MalformedMessage, match="TripCompleted"):
        registry.parse_as(envelope, TripCompleted)


def test_added_fields_from_a_newer_producer_are_tolerated(registry: MessageRegistry) -> None:
    envelope = Envelope.new(
        "user.reserve-credits",
        {"amount": 3, "currency": "EUR"},
        producer="x",
        aggregate_type="t",
        aggregate_id="1",
    )

    assert registry.parse(envelope) == ReserveCredits(amount=3)


def test_two_classes_cannot_claim_one_type_and_version(registry: MessageRegistry) -> None:
    class Impostor(Message):
        event_type = "trip.completed"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Impostor)
    assert registry.register(TripCompleted) is TripCompleted  # same class again: harmless


def test_class_without_event_type_cannot_register() -> None:
    class Nameless(Message):
        pass

    with pytest.raises(TypeError, match="event_type"):
        MessageRegistry().register(Nameless)


def test_registry_lists_json_schemas(registry: MessageRegistry) -> None:
    schemas = registry.schemas()

    assert set(schemas) == {"trip.completed@v1", "trip.completed@v2", "user.reserve-credits@v1"}
    assert "trip_id" in schemas["trip.completed@v1"]["properties"]
    assert "user.reserve-credits" in registry
