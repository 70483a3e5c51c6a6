"""The two messages a saga exchanges with its participants; both travel as plain JSON data."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from fleet.common.saga._model import Phase


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (UUIDs as strings) for a message body or an outbox row."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Parse message data; raises pydantic's `ValidationError` on a malformed message."""
        return cls.model_validate(data)


class SagaCommand(_Message):
    """Orchestrator → participant: perform `command_type` for step `step` of saga `saga_id`.

    Participants must be idempotent on `idempotency_key` (the same step and phase may arrive
    again with a higher `attempt` after a timeout) and answer with `reply(...)` on `reply_to`.
    """

    saga_id: uuid.UUID
    saga_name: str
    step: str
    phase: Phase
    attempt: int = Field(ge=1)
    command_type: str
    payload: dict[str, Any]
    reply_to: str

    @property
    def idempotency_key(self) -> str:
        """Stable across re-sends of the same step and phase."""
        return f"{self.saga_id}:{self.step}:{self.phase.value}"

    @property
    def message_id(self) -> str:
        """Unique per attempt (e.g. for an outbox row's id)."""
        return f"{self.idempotency_key}:{self.attempt}"

    def reply(
        self,
        *,
        success: bool,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> SagaReply:
        """The reply to this command, echoing what the orchestrator needs to match it."""
        return SagaReply(
            saga_id=self.saga_id,
            step=self.step,
            phase=self.phase,
            attempt=self.attempt,
            success=success,
            result=dict(result or {}),
            error=error,
        )


class SagaReply(_Message):
    """Participant → orchestrator: the outcome of one command attempt."""

    saga_id: uuid.UUID
    step: str
    phase: Phase
    attempt: int = Field(ge=1)
    success: bool
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = Field(default=None, max_length=2000)
