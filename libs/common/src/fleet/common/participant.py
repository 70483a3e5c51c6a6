"""The participant side of an orchestrated saga: run a command once, reply through the outbox.

A participant service maps command types to use cases `(session, command) -> result`. The bus
handler built here (wrap it with `ServiceRuntime.consumer` for the inbox) runs the use case and
puts the reply in the service's outbox in the same transaction, so the effect and the reply
commit together. A business refusal (any `FleetError`, e.g. not enough credits) is a failure
*reply*, not an error: the saga compensates. Anything else raises, so the bus retries and then
dead-letters the command, and the orchestrator's timeout takes over.

A refused command must write nothing but its reply, so a handler runs in a savepoint that its
refusal rolls back — unless it is registered as `checks_first(handler)`: a handler that checks
everything before its first write needs nothing undone and saves the SAVEPOINT/RELEASE round
trips. Safe by default, cheaper by declaration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.errors import FleetError
from fleet.common.logging import get_logger
from fleet.common.messaging import Envelope, MalformedMessage, Message
from fleet.common.outbox import InboxHandler
from fleet.common.runtime import ServiceRuntime
from fleet.common.saga import SagaCommand

log = get_logger("fleet.participant")

CommandHandler = Callable[[AsyncSession, SagaCommand], Awaitable[Mapping[str, Any] | None]]
M = TypeVar("M", bound=Message)


def command_payload(command: SagaCommand, cls: type[M]) -> M:
    """A participant's typed view of the saga's data (`cls` from fleet.contracts.booking).

    A payload that does not fit can never succeed: it is malformed (dead-lettered for an
    operator; the orchestrator's timeout compensates), not a business refusal.
    """
    try:
        return cls.model_validate(command.payload)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:10])
        raise MalformedMessage(f"invalid {command.command_type} payload: {fields}") from None


def checks_first(handler: CommandHandler) -> CommandHandler:
    """Mark `handler` as refusing only before its first write: it runs without a savepoint."""

    async def unguarded(session: AsyncSession, command: SagaCommand) -> Mapping[str, Any] | None:
        return await handler(session, command)

    unguarded.__qualname__ = f"checks_first[{getattr(handler, '__qualname__', handler)}]"
    unguarded.checks_first = True  # type: ignore[attr-defined]
    return unguarded


async def _in_savepoint(
    handler: CommandHandler, session: AsyncSession, command: SagaCommand
) -> Mapping[str, Any] | None:
    async with session.begin_nested():
        return await handler(session, command)


def saga_participant(rt: ServiceRuntime, handlers: Mapping[str, CommandHandler]) -> InboxHandler:
    """An inbox handler answering the saga commands in `handlers` (keyed by command type)."""

    async def handle(session: AsyncSession, envelope: Envelope) -> None:
        try:
            command = SagaCommand.from_dict(envelope.data)
        except ValidationError as exc:
            raise MalformedMessage(f"not a saga command: {exc.error_count()} errors") from None
        handler = handlers.get(command.command_type)
        if handler is None:
            raise MalformedMessage(f"{rt.name} does not handle {command.command_type}")
        try:
            if getattr(handler, "checks_first", False):
                result = await handler(session, command)
            else:
                result = await _in_savepoint(handler, session, command)
            reply = command.reply(success=True, result=result)
        except FleetError as refusal:
            log.info(
                "saga command refused",
                command=command.command_type,
                saga_id=str(command.saga_id),
                reason=refusal.detail,
            )
            reply = command.reply(success=False, error=refusal.detail)
        await rt.publish(
            session,
            Envelope.new(
                command.reply_to,
                reply.to_dict(),
                producer=rt.name,
                aggregate_type="saga",
                aggregate_id=command.saga_id,
                causation=envelope,
                kind="reply",
            ),
            exchange="commands",
        )

    return handle
