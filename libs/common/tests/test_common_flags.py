from __future__ import annotations

import uuid

import pytest

from fleet.common.flags import FeatureFlags, Flag, bucket

USERS = [uuid.UUID(int=i) for i in range(2000)]


def test_rollout_percentage_enables_about_that_share_of_users() -> None:
    flags = FeatureFlags([Flag("new_thing", rollout=25)], env={})
    share = sum(flags.is_enabled("new_thing", u) for u in USERS) / len(USERS)
    assert 0.21 < share < 0.29


def test_a_user_keeps_the_same_answer_and_raising_the_rollout_only_adds_users() -> None:
    low = FeatureFlags([Flag("f", rollout=10)], env={})
    high = FeatureFlags([Flag("f", rollout=40)], env={})
    on_low = {u for u in USERS if low.is_enabled("f", u)}
    assert on_low == {u for u in USERS if low.is_enabled("f", u)}
    assert on_low < {u for u in USERS if high.is_enabled("f", u)}


def test_buckets_differ_per_flag_so_rollouts_are_independent() -> None:
    same = sum(bucket("a", str(u)) == bucket("b", str(u)) for u in USERS)
    assert same < len(USERS) * 0.05


def test_environment_overrides_turn_flags_on_off_or_to_a_percentage() -> None:
    declared = [Flag("a"), Flag("b", rollout=100), Flag("c")]
    flags = FeatureFlags(
        declared, env={"FLEET_FLAG_A": "on", "FLEET_FLAG_B": "off", "FLEET_FLAG_C": "50%"}
    )
    assert flags.is_enabled("a", USERS[0])
    assert not flags.is_enabled("b", USERS[0])
    assert {d["name"]: d["rollout"] for d in flags.describe()} == {"a": 100, "b": 0, "c": 50}


def test_json_overrides_can_allow_named_users() -> None:
    chosen = USERS[7]
    env = {"FLEET_FLAGS": f'{{"a": {{"rollout": 0, "allow": ["{chosen}"]}}}}'}
    flags = FeatureFlags([Flag("a")], env=env)
    assert flags.is_enabled("a", chosen)
    assert not flags.is_enabled("a", USERS[8])


def test_unknown_flags_are_errors_not_silently_off() -> None:
    flags = FeatureFlags([Flag("a")], env={})
    with pytest.raises(KeyError, match="unknown feature flag"):
        flags.is_enabled("b", USERS[0])
    with pytest.raises(ValueError, match="unknown feature flags"):
        FeatureFlags([Flag("a")], env={"FLEET_FLAGS": '{"typo": {"rollout": 5}}'})
    with pytest.raises(ValueError, match="rollout"):
        Flag("x", rollout=101)
