"""Saga definitions as data, the command/reply messages, and the engine's wiring checks."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError
from sqlalchemy import MetaData

from fleet.common.db import service_metadata
from fleet.common.saga import (
    Phase,
    SagaCommand,
    SagaDefinition,
    SagaEngine,
    SagaReply,
    Step,
    saga_tables,
)

SEED_YAML_AS_DICT = {
    "saga": {
        "name": "TripBookingSaga",
        "steps": [
            {
                "service": "user-service",
                "action": "reserve-credits",
                "compensate": "release-credits",
            },
            {
                "service": "vehicle-service",
                "action": "reserve-vehicle",
                "compensate": "release-vehicle",
            },
            {"service": "trip-service", "action": "create-trip", "compensate": "cancel-trip"},
            {
                "service": "notification-service",
                "action": "send-confirmation",
                "compensate": "send-cancellation",
            },
        ],
    }
}


def test_the_seed_yaml_shape_loads_with_step_names_defaulting_to_the_action() -> None:
    definition = SagaDefinition.from_dict(SEED_YAML_AS_DICT)

    assert definition.name == "TripBookingSaga"
    assert [s.name for s in definition.steps] == [
        "reserve-credits",
        "reserve-vehicle",
        "create-trip",
        "send-confirmation",
    ]
    assert definition.steps[1].compensation == "release-vehicle"
    assert definition.steps[0].service == "user-service"
    assert definition.steps[0].timeout_s == 5.0
    assert not definition.steps[0].local


def test_from_dict_reads_local_timeout_and_retries() -> None:
    definition = SagaDefinition.from_dict(
        {
            "name": "s",
            "steps": [
                {"name": "a", "action": "x.a", "compensation": "x.undo-a", "timeout": 2.5},
                {"name": "b", "action": "x.b", "local": True, "retries": 3},
            ],
        }
    )

    assert definition.steps == (
        Step("a", "x.a", "x.undo-a", timeout_s=2.5),
        Step("b", "x.b", None, local=True, retries=3),
    )
    assert definition.index("b") == 1


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "s", "steps": []},
        {"name": "", "steps": [{"action": "a"}]},
        {"name": "s", "steps": [{"action": "a", "bogus": 1}]},
        {"name": "s", "steps": [{"action": "a", "timeout_s": 0}]},
        {"name": "s", "steps": [{"action": "a", "retries": -1}]},
        {"name": "s", "steps": [{"action": "a"}, {"action": "a"}]},
        {"name": "s", "steps": [{"action": ""}]},
    ],
)
def test_from_dict_rejects_malformed_definitions(spec: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"saga|step|definition"):
        SagaDefinition.from_dict(spec)


def test_a_command_round_trips_as_json_data_and_answers_itself() -> None:
    command = SagaCommand(
        saga_id=uuid.uuid4(),
        saga_name="s",
        step="reserve-credits",
        phase=Phase.COMPENSATION,
        attempt=2,
        command_type="user.release-credits",
        payload={"rider_id": "r1", "amount_cents": 1200},
        reply_to="saga.s.reply",
    )

    data = command.to_dict()
    assert data["saga_id"] == str(command.saga_id)
    assert data["phase"] == "compensation"
    assert SagaCommand.from_dict(data) == command
    assert command.idempotency_key == f"{command.saga_id}:reserve-credits:compensation"
    assert command.message_id.endswith(":2")

    reply = SagaReply.from_dict(command.reply(success=True, result={"ok": 1}).to_dict())
    assert (reply.saga_id, reply.step, reply.phase, reply.attempt) == (
        command.saga_id,
        "reserve-credits",
        Phase.COMPENSATION,
        2,
    )
    assert reply.result == {"ok": 1}


@pytest.mark.parametrize(
    "bad",
    [
        {"attempt": 0},
        {"phase": "sideways"},
        {"saga_id": "not-a-uuid"},
        {"unexpected": True},
    ],
)
def test_a_malformed_reply_is_rejected(bad: dict[str, object]) -> None:
    data: dict[str, object] = {
        "saga_id": str(uuid.uuid4()),
        "step": "a",
        "phase": "action",
        "attempt": 1,
        "success": True,
    }
    with pytest.raises(ValidationError):
        SagaReply.from_dict(data | bad)


async def _noop(*_: object) -> None:
    return None


def test_the_engine_refuses_a_local_step_without_its_callables() -> None:
    tables = saga_tables(service_metadata("saga_def_test"))
    definition = SagaDefinition(
        "s", [Step("remote", "x.remote"), Step("here", "x.here", "x.undo-here", local=True)]
    )

    with pytest.raises(ValueError, match="local actions"):
        SagaEngine(definition, _noop, tables=tables)
    with pytest.raises(ValueError, match="local compensations"):
        SagaEngine(definition, _noop, {"here": _noop}, tables=tables)
    with pytest.raises(ValueError, match="local actions"):
        SagaEngine(
            definition, _noop, {"here": _noop, "remote": _noop}, {"here": _noop}, tables=tables
        )
    engine = SagaEngine(definition, _noop, {"here": _noop}, {"here": _noop}, tables=tables)
    assert engine.reply_to == "saga.s.reply"


def test_saga_tables_are_added_once_per_metadata() -> None:
    metadata = MetaData(schema="saga_def_tables")

    first = saga_tables(metadata)
    second = saga_tables(metadata)

    assert first == second
    assert {t.name for t in metadata.sorted_tables} == {"sagas", "saga_steps"}
