"""A saga as data: an ordered list of steps, each an action and (maybe) its compensation.

The shape follows the seed's `trip-booking-saga.yml`, so a definition can live in a YAML file and
be loaded with `SagaDefinition.from_dict(yaml.safe_load(...))`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError


@dataclass(frozen=True)
class Step:
    """One step. `action`/`compensation` are command types such as "user.reserve-credits".

    A `local` step is run by the owning service in-process, inside the caller's transaction; its
    callables are registered with the engine under the step's `name`. A remote step is a command
    sent through the engine's `send`; `timeout_s` bounds the wait for each reply, and `retries`
    is how many times the action is re-sent after a timeout before the saga gives up on it.
    """

    name: str
    action: str
    compensation: str | None = None
    timeout_s: float = 5.0
    local: bool = False
    retries: int = 0
    service: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.action:
            raise ValueError("a saga step needs a name and an action")
        if self.timeout_s <= 0:
            raise ValueError(f"step {self.name!r}: timeout_s must be positive")
        if self.retries < 0:
            raise ValueError(f"step {self.name!r}: retries must not be negative")


@dataclass(frozen=True, init=False)
class SagaDefinition:
    """A named, ordered, non-empty list of uniquely named steps."""

    name: str
    steps: tuple[Step, ...]

    def __init__(self, name: str, steps: Sequence[Step]) -> None:
        if not name:
            raise ValueError("a saga needs a name")
        if not steps:
            raise ValueError(f"saga {name!r} has no steps")
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"saga {name!r} has duplicate step names: {names}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "steps", tuple(steps))

    def index(self, step_name: str) -> int:
        """The position of the step called `step_name`."""
        for i, step in enumerate(self.steps):
            if step.name == step_name:
                return i
        raise KeyError(step_name)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> SagaDefinition:
        """Build a definition from a YAML-shaped mapping (a top-level `saga:` key is optional).

        Step keys: `name` (defaults to the action), `action`, `compensation` (or the seed's
        `compensate`), `timeout_s` (or `timeout`), `local`, `retries`, `service`.
        """
        body = spec.get("saga", spec)
        try:
            parsed = _SagaSpec.model_validate(body)
        except ValidationError as exc:
            raise ValueError(f"invalid saga definition: {exc}") from exc
        return cls(
            parsed.name,
            [
                Step(
                    name=s.name or s.action,
                    action=s.action,
                    compensation=s.compensation,
                    timeout_s=s.timeout_s,
                    local=s.local,
                    retries=s.retries,
                    service=s.service,
                )
                for s in parsed.steps
            ],
        )


class _StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, max_length=100)
    action: str = Field(min_length=1, max_length=200)
    compensation: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        validation_alias=AliasChoices("compensation", "compensate"),
    )
    timeout_s: float = Field(
        default=5.0, gt=0, validation_alias=AliasChoices("timeout_s", "timeout")
    )
    local: bool = False
    retries: int = Field(default=0, ge=0, le=100)
    service: str | None = None


class _SagaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    steps: list[_StepSpec] = Field(min_length=1)
