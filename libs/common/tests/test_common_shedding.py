"""QueueDelayShedder: refuse new work only while a queue stands (every sample of a whole interval
above the target), and take work again at once when one sample is fast or none come."""

from __future__ import annotations

import pytest

from fleet.common.shedding import QueueDelayShedder


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def shedder(clock: Clock, target_s: float = 0.25) -> QueueDelayShedder:
    return QueueDelayShedder(target_s, interval_s=1.0, clock=clock)


def test_without_samples_work_is_accepted() -> None:
    clock = Clock()
    s = shedder(clock)
    clock.now += 5
    assert not s.overloaded()
    assert s.standing_delay_s() is None


def test_a_whole_interval_of_slow_samples_refuses_work_in_the_next() -> None:
    clock = Clock()
    s = shedder(clock)
    for _ in range(10):
        s.observe(0.8)
        clock.now += 0.1
    clock.now += 0.05

    assert s.overloaded()
    assert s.standing_delay_s() == 0.8
    s.observe(0.6)  # still slow: the refusal stands
    assert s.overloaded()


def test_slow_samples_within_the_first_interval_are_not_yet_a_standing_queue() -> None:
    clock = Clock()
    s = shedder(clock)
    s.observe(3.0)
    clock.now += 0.5
    assert not s.overloaded()


def test_a_burst_with_one_fast_sample_in_the_interval_refuses_nothing() -> None:
    clock = Clock()
    s = shedder(clock)
    for seconds in (0.9, 1.2, 0.01, 2.0):
        s.observe(seconds)
        clock.now += 0.3

    assert not s.overloaded()
    assert s.standing_delay_s() is None  # its fastest sample, 10 ms, is under the target


def test_one_fast_sample_lifts_the_refusal_at_once() -> None:
    clock = Clock()
    s = shedder(clock)
    s.observe(1.0)
    clock.now += 1.0
    assert s.overloaded()

    s.observe(0.02)

    assert not s.overloaded()


def test_an_interval_without_samples_lifts_the_refusal() -> None:
    clock = Clock()
    s = shedder(clock)
    s.observe(1.0)
    clock.now += 1.0
    assert s.overloaded()

    clock.now += 1.5

    assert not s.overloaded()


def test_target_zero_never_refuses() -> None:
    clock = Clock()
    s = shedder(clock, target_s=0)
    s.observe(60.0)
    clock.now += 1.0
    assert not s.enabled
    assert not s.overloaded()
    assert s.standing_delay_s() is None


@pytest.mark.parametrize(("target_s", "interval_s"), [(-1.0, 1.0), (0.25, 0.0)])
def test_a_negative_target_or_empty_interval_is_refused(target_s: float, interval_s: float) -> None:
    with pytest.raises(ValueError, match="target_s"):
        QueueDelayShedder(target_s, interval_s)
