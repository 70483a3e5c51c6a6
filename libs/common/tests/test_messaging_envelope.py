"""The envelope's wire format, its derived messages, and AMQP topic matching."""

from __future__ import annotations

import datetime as dt
import uuid

import orjson
import pytest

from fleet.common.messaging import Envelope, MalformedMessage, topic_matches

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def completed(**headers: str) -> Envelope:
    return Envelope.new(
        "trip.completed",
        {"trip_id": "t-1", "fare": "12.50", "km": 3.2},
        producer="trip",
        aggregate_type="trip",
        aggregate_id=uuid.UUID(int=7),
        version=4,
        headers=headers,
    )


def test_envelope_survives_the_wire_unchanged() -> None:
    sent = completed(traceparent=TRACEPARENT)

    assert Envelope.decode(sent.encode()) == sent


def test_new_envelope_has_fresh_ids_and_utc_time() -> None:
    a, b = completed(), completed()

    assert a.event_id != b.event_id
    assert a.correlation_id == str(a.event_id)
    assert a.causation_id is None
    assert a.occurred_at.tzinfo == dt.UTC
    assert a.aggregate_id == str(uuid.UUID(int=7))
    assert a.kind == "event"
    assert a.schema_version == 1


def test_caused_message_inherits_correlation_and_trace_context() -> None:
    parent = completed(traceparent=TRACEPARENT, secret="not-inherited")

    child = Envelope.new(
        "invoice.issued",
        {},
        producer="billing",
        aggregate_type="invoice",
        aggregate_id="i-1",
        causation=parent,
    )

    assert child.correlation_id == parent.correlation_id
    assert child.causation_id == str(parent.event_id)
    assert child.headers == {"traceparent": TRACEPARENT}


def test_reply_goes_to_the_commands_reply_key() -> None:
    command = Envelope.new(
        "user.reserve-credits",
        {"amount": 10},
        producer="trip",
        aggregate_type="saga",
        aggregate_id="s-1",
        kind="command",
        reply_to="trip.saga-replies",
    )

    reply = command.reply({"ok": True}, producer="user")

    assert reply.event_type == "trip.saga-replies"
    assert reply.kind == "reply"
    assert reply.causation_id == str(command.event_id)
    assert reply.correlation_id == command.correlation_id


def test_reply_to_an_event_without_reply_key_is_refused() -> None:
    with pytest.raises(ValueError, match="reply_to"):
        completed().reply({}, producer="x")


def test_occurred_at_in_another_zone_is_normalised_to_utc() -> None:
    raw = orjson.loads(completed().encode())
    raw["occurred_at"] = "2025-01-01T12:00:00+02:00"

    decoded = Envelope.decode(orjson.dumps(raw))

    assert decoded.occurred_at == dt.datetime(2025, 1, 1, 10, tzinfo=dt.UTC)
    assert decoded.occurred_at.utcoffset() == dt.timedelta(0)


def test_unknown_envelope_fields_are_ignored_for_forward_compatibility() -> None:
    raw = orjson.loads(completed().encode())
    raw["added_in_v2"] = "x"

    assert Envelope.decode(orjson.dumps(raw)).event_type == "trip.completed"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b"{}",
        b"\xff\xfe",
    ],
)
def test_bytes_that_are_no_envelope_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        Envelope.decode(body)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "not-a-uuid"),
        ("event_type", "trip.#"),
        ("event_type", ""),
        ("occurred_at", "2025-01-01T12:00:00"),  # naive
        ("kind", "query"),
        ("version", -1),
        ("data", [1]),
        ("headers", {"traceparent": 5}),
    ],
)
def test_invalid_envelope_field_is_malformed_and_named(field: str, value: object) -> None:
    raw = orjson.loads(completed().encode())
    raw[field] = value

    with pytest.raises(MalformedMessage, match=field):
        Envelope.decode(orjson.dumps(raw))


def test_envelope_is_immutable() -> None:
    envelope = completed()

    with pytest.raises(ValueError, match="frozen"):
        envelope.event_type = "trip.cancelled"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("trip.*", "trip.completed", True),
        ("trip.*", "trip.leg.started", False),
        ("trip.*", "trip", False),
        ("trip.#", "trip", True),
        ("trip.#", "trip.leg.started", True),
        ("#", "anything.at.all", True),
        ("*.completed", "trip.completed", True),
        ("*.completed", "completed", False),
        ("#.completed", "completed", True),
        ("#.completed", "a.b.completed", True),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
        ("trip.completed", "trip.completed", True),
        ("trip.completed", "trip.cancelled", False),
        ("*.*", "a.b", True),
        ("*.*", "a.b.c", False),
    ],
)
def test_topic_patterns_match_like_rabbitmq(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches
