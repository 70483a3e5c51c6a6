"""Feature flags with per-user percentage rollout (the seed's strangler-fig switch).

A flag is on for a user when the user is in its allow list, or when the user's stable bucket
(a hash of flag name and user id, 0-99) falls under the rollout percentage. The same user always
gets the same answer for the same rollout, and raising the percentage only adds users.

Flags are declared in code with their defaults and overridden from the environment:
`FLEET_FLAGS='{"route_estimator_v2": {"rollout": 25, "allow": ["<uuid>"]}}'` or, per flag,
`FLEET_FLAG_ROUTE_ESTIMATOR_V2=on|off|25`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Flag:
    """A flag's rule: `rollout` percent of users (0-100), plus an explicit allow list."""

    name: str
    rollout: int = 0
    allow: frozenset[str] = field(default_factory=frozenset)
    description: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.rollout <= 100:
            raise ValueError(f"flag {self.name}: rollout must be 0-100, not {self.rollout}")

    def enabled_for(self, user_id: uuid.UUID | str | None) -> bool:
        if user_id is None:
            return self.rollout >= 100
        uid = str(user_id)
        return uid in self.allow or bucket(self.name, uid) < self.rollout


def bucket(flag: str, user_id: str) -> int:
    """The user's stable bucket (0-99) for a flag."""
    digest = hashlib.sha256(f"{flag}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


class FeatureFlags:
    """The flags a process knows, with environment overrides applied once at construction."""

    def __init__(self, flags: Iterable[Flag], env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._flags = {f.name: f for f in flags}
        for name, override in _overrides(env, self._flags).items():
            self._flags[name] = _apply(self._flags[name], override)

    def is_enabled(self, name: str, user_id: uuid.UUID | str | None = None) -> bool:
        """Whether `name` is on for `user_id`; an unknown flag is an error, not silently off."""
        try:
            return self._flags[name].enabled_for(user_id)
        except KeyError:
            raise KeyError(f"unknown feature flag {name!r}") from None

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "name": f.name,
                "rollout": f.rollout,
                "allow": sorted(f.allow),
                "description": f.description,
            }
            for f in self._flags.values()
        ]


def _overrides(env: Mapping[str, str], known: Mapping[str, Flag]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if raw := env.get("FLEET_FLAGS"):
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            raise ValueError("FLEET_FLAGS must be a JSON object of flag name -> settings")
        found.update(parsed)
    for name in known:
        if (value := env.get(f"FLEET_FLAG_{name.upper()}")) is not None:
            found[name] = value
    unknown = set(found) - set(known)
    if unknown:
        raise ValueError(f"unknown feature flags in the environment: {sorted(unknown)}")
    return found


def _apply(flag: Flag, override: Any) -> Flag:
    if isinstance(override, str):
        word = override.strip().lower()
        if word in ("on", "true", "1", "yes"):
            return replace(flag, rollout=100)
        if word in ("off", "false", "0", "no"):
            return replace(flag, rollout=0)
        return replace(flag, rollout=int(word.rstrip("%")))
    if isinstance(override, dict):
        return replace(
            flag,
            rollout=int(override.get("rollout", flag.rollout)),
            allow=frozenset(str(u) for u in override.get("allow", flag.allow)),
        )
    raise ValueError(f"flag {flag.name}: cannot read override {override!r}")
