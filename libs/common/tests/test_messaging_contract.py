"""One contract, every bus: the same behaviours proved on `InMemoryBus` and on `RabbitBus`.

RabbitMQ runs locally; this module gets a vhost of its own (made with rabbitmqctl, deleted after)
and every test uses its own queue names and routing keys.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aio_pika
import pytest

from fleet.common.messaging import (
    BusNotStarted,
    Envelope,
    InMemoryBus,
    MessageBus,
    PublishError,
    UnroutableMessage,
)
from fleet.common.messaging.rabbit import RabbitBus
from fleet.common.testing import eventually

RABBIT = "amqp://guest:guest@127.0.0.1:5672/"
FAST = (0.01, 0.02)

AnyBus = InMemoryBus | RabbitBus
BusFactory = Callable[[], Awaitable[AnyBus]]


def _ctl(*args: str) -> str:
    return subprocess.run(  # noqa: S603
        ["rabbitmqctl", "-q", *args],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


@pytest.fixture(scope="module")
def rabbit_url() -> Iterator[str]:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed")
    vhost = f"fleet_test_{uuid.uuid4().hex[:10]}"
    _ctl("add_vhost", vhost)
    try:
        _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"{RABBIT}{vhost}"
    finally:
        _ctl("delete_vhost", vhost)


@pytest.fixture(params=["memory", pytest.param("rabbit", marks=pytest.mark.rabbitmq)])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """`await make_bus()`: a started bus of the parametrised kind, closed after the test."""
    made: list[AnyBus] = []
    url = request.getfixturevalue("rabbit_url") if request.param == "rabbit" else ""

    async def make() -> AnyBus:
        bus: AnyBus = RabbitBus(url, "contract-test") if url else InMemoryBus()
        await bus.start()
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close()


@pytest.fixture
async def bus(make_bus: BusFactory) -> AnyBus:
    return await make_bus()


@pytest.fixture
def p() -> str:
    """A prefix for this test's queue names and routing keys."""
    return f"t{uuid.uuid4().hex[:8]}"


def event(event_type: str, n: int = 0, **headers: str) -> Envelope:
    return Envelope.new(
        event_type,
        {"n": n},
        producer="contract-test",
        aggregate_type="thing",
        aggregate_id=str(n),
        headers=headers,
    )


class Recorder:
    """A handler that records envelopes; optionally fails the first `fail_times` calls per id."""

    def __init__(self, fail_times: int = 0) -> None:
        self.seen: list[Envelope] = []
        self.calls = 0
        self.fail_times = fail_times
        self._failures: dict[uuid.UUID, int] = {}

    async def __call__(self, envelope: Envelope) -> None:
        self.calls += 1
        done = self._failures.get(envelope.event_id, 0)
        if done < self.fail_times:
            self._failures[envelope.event_id] = done + 1
            raise ValueError(f"boom {envelope.data['n']}")
        self.seen.append(envelope)

    @property
    def types(self) -> set[str]:
        return {e.event_type for e in self.seen}


def test_both_adapters_satisfy_the_protocol() -> None:
    buses: list[MessageBus] = [InMemoryBus(), RabbitBus(RABBIT, "x")]
    assert len(buses) == 2


async def test_messages_reach_the_queues_whose_patterns_match(bus: AnyBus, p: str) -> None:
    trips, everything, vehicles = Recorder(), Recorder(), Recorder()
    await bus.subscribe(f"{p}.trips", [f"{p}.trip.*"], trips)
    await bus.subscribe(f"{p}.all", [f"{p}.#"], everything)
    await bus.subscribe(f"{p}.vehicles", [f"{p}.vehicle.*", f"{p}.none"], vehicles)

    for key in ("trip.completed", "vehicle.moved", "trip.leg.started"):
        await bus.publish(event(f"{p}.{key}"))

    await eventually(lambda: len(everything.seen) == 3)
    await eventually(lambda: len(trips.seen) == 1 and len(vehicles.seen) == 1)
    assert trips.types == {f"{p}.trip.completed"}
    assert vehicles.types == {f"{p}.vehicle.moved"}
    await asyncio.sleep(0.1)
    assert len(trips.seen) == 1


async def test_event_published_before_any_queue_is_bound_is_dropped(bus: AnyBus, p: str) -> None:
    await bus.publish(event(f"{p}.trip.completed", 1))
    late = Recorder()
    await bus.subscribe(f"{p}.late", [f"{p}.trip.*"], late)
    await bus.publish(event(f"{p}.trip.completed", 2))

    await eventually(lambda: len(late.seen) == 1)
    await asyncio.sleep(0.1)
    assert [e.data["n"] for e in late.seen] == [2]


async def test_command_nobody_consumes_is_refused(bus: AnyBus, p: str) -> None:
    with pytest.raises(UnroutableMessage):
        await bus.publish(event(f"{p}.user.reserve-credits"), exchange="commands")


async def test_events_and_commands_are_routed_separately(bus: AnyBus, p: str) -> None:
    commands, events = Recorder(), Recorder()
    await bus.subscribe(f"{p}.commands", [f"{p}.#"], commands, exchange="commands")
    await bus.subscribe(f"{p}.events", [f"{p}.#"], events)

    await bus.publish(event(f"{p}.user.reserve-credits", 1), exchange="commands")
    await bus.publish(event(f"{p}.user.registered", 2))

    await eventually(lambda: len(commands.seen) == 1 and len(events.seen) == 1)
    assert commands.types == {f"{p}.user.reserve-credits"}
    assert events.types == {f"{p}.user.registered"}


async def test_delivered_envelope_equals_the_published_one(bus: AnyBus, p: str) -> None:
    got = Recorder()
    await bus.subscribe(f"{p}.q", [f"{p}.#"], got)
    sent = event(f"{p}.trip.completed", 7, traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")

    await bus.publish(sent)

    await eventually(lambda: len(got.seen) == 1)
    assert got.seen[0] == sent


async def test_handlers_run_concurrently_up_to_prefetch(bus: AnyBus, p: str) -> None:
    running, peak, done = 0, 0, 0
    release = asyncio.Event()

    async def slow(_: Envelope) -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        done += 1

    await bus.subscribe(f"{p}.q", [f"{p}.#"], slow, prefetch=3)
    for n in range(8):
        await bus.publish(event(f"{p}.job.queued", n))

    await eventually(lambda: running == 3)
    await asyncio.sleep(0.2)
    assert peak == 3
    release.set()
    await eventually(lambda: done == 8)
    assert peak == 3


async def test_failing_handler_is_retried_until_it_succeeds(bus: AnyBus, p: str) -> None:
    flaky = Recorder(fail_times=2)
    await bus.subscribe(f"{p}.q", [f"{p}.#"], flaky, max_retries=3, retry_delays=FAST)

    await bus.publish(event(f"{p}.trip.completed", 1))

    await eventually(lambda: len(flaky.seen) == 1)
    assert flaky.calls == 3
    await asyncio.sleep(0.1)
    assert await bus.dead_letters(f"{p}.q") == []


async def test_retries_wait_for_the_configured_delay(bus: AnyBus, p: str) -> None:
    flaky = Recorder(fail_times=1)
    await bus.subscribe(f"{p}.q", [f"{p}.#"], flaky, retry_delays=(0.3,))
    start = asyncio.get_running_loop().time()

    await bus.publish(event(f"{p}.trip.completed"))

    await eventually(lambda: len(flaky.seen) == 1)
    assert asyncio.get_running_loop().time() - start >= 0.28


async def test_message_failing_every_retry_ends_in_the_dlq_with_its_error(
    bus: AnyBus, p: str
) -> None:
    broken = Recorder(fail_times=99)
    await bus.subscribe(f"{p}.q", [f"{p}.#"], broken, max_retries=2, retry_delays=FAST)
    sent = event(f"{p}.trip.completed", 42)

    await bus.publish(sent)

    await eventually(lambda: broken.calls == 3)
    dead = await _dead_letters_soon(bus, f"{p}.q", 1)
    assert dead[0].envelope == sent
    assert dead[0].attempts == 3
    assert dead[0].error == "ValueError: boom 42"
    assert dead[0].queue == f"{p}.q"
    assert f"{p}.q" in dead[0].handler
    assert abs((dt.datetime.now(dt.UTC) - dead[0].dead_at).total_seconds()) < 30
    await asyncio.sleep(0.1)
    assert broken.calls == 3


async def test_undecodable_body_goes_to_the_dlq_without_retries(bus: AnyBus, p: str) -> None:
    got = Recorder()
    await bus.subscribe(f"{p}.q", [f"{p}.#"], got, max_retries=3, retry_delays=FAST)

    await bus.publish_raw(b"{not json", f"{p}.trip.completed")

    dead = await _dead_letters_soon(bus, f"{p}.q", 1)
    assert dead[0].envelope is None
    assert dead[0].body == b"{not json"
    assert dead[0].attempts == 0
    assert dead[0].error.startswith("malformed message")
    assert got.calls == 0


async def test_queue_depth_counts_dead_letters_and_nothing_waiting(bus: AnyBus, p: str) -> None:
    await bus.subscribe(f"{p}.q", [f"{p}.#"], Recorder(fail_times=99), max_retries=0)
    for n in range(2):
        await bus.publish(event(f"{p}.trip.completed", n))
    await _dead_letters_soon(bus, f"{p}.q", 2)

    depth = await bus.queue_depth(f"{p}.q")

    assert (depth.ready, depth.dead) == (0, 2)


async def test_listing_dead_letters_leaves_them_in_place(bus: AnyBus, p: str) -> None:
    await bus.subscribe(f"{p}.q", [f"{p}.#"], Recorder(fail_times=99), max_retries=0)
    for n in range(3):
        await bus.publish(event(f"{p}.trip.completed", n))
    first = await _dead_letters_soon(bus, f"{p}.q", 3)

    again = await bus.dead_letters(f"{p}.q")

    assert {d.id for d in again} == {d.id for d in first}
    assert len({d.id for d in first}) == 3
    assert len(await bus.dead_letters(f"{p}.q", limit=2)) == 2


async def test_replay_after_a_fix_delivers_each_message_once(bus: AnyBus, p: str) -> None:
    handler = Recorder(fail_times=1)
    await bus.subscribe(f"{p}.q", [f"{p}.#"], handler, max_retries=0)
    sent = event(f"{p}.trip.completed", 5)
    await bus.publish(sent)
    await _dead_letters_soon(bus, f"{p}.q", 1)
    assert handler.seen == []

    # The "fix": the handler only failed once per message, so the replay succeeds.
    assert await bus.replay_dead_letters(f"{p}.q") == 1

    await eventually(lambda: len(handler.seen) == 1)
    assert handler.seen[0] == sent
    await asyncio.sleep(0.2)
    assert len(handler.seen) == 1
    assert await bus.dead_letters(f"{p}.q") == []


async def test_replay_of_chosen_ids_leaves_the_others_dead(bus: AnyBus, p: str) -> None:
    handler = Recorder(fail_times=1)
    await bus.subscribe(f"{p}.q", [f"{p}.#"], handler, max_retries=0)
    await bus.publish(event(f"{p}.trip.completed", 1))
    await bus.publish(event(f"{p}.trip.completed", 2))
    dead = await _dead_letters_soon(bus, f"{p}.q", 2)
    chosen = next(d for d in dead if d.envelope and d.envelope.data["n"] == 2)

    assert await bus.replay_dead_letters(f"{p}.q", [chosen.id, "no-such-id"]) == 1

    await eventually(lambda: len(handler.seen) == 1)
    assert handler.seen[0].data["n"] == 2
    remaining = await bus.dead_letters(f"{p}.q")
    assert [d.envelope.data["n"] for d in remaining if d.envelope] == [1]


async def test_replay_of_an_unknown_queue_moves_nothing(bus: AnyBus, p: str) -> None:
    assert await bus.replay_dead_letters(f"{p}.nothing") == 0
    assert await bus.dead_letters(f"{p}.nothing") == []


async def test_bus_refuses_work_after_close(make_bus: BusFactory, p: str) -> None:
    bus = await make_bus()
    await bus.ping()
    await bus.close()

    with pytest.raises(BusNotStarted):
        await bus.publish(event(f"{p}.trip.completed"))
    with pytest.raises(BusNotStarted):
        await bus.ping()


async def test_bad_subscription_arguments_are_refused(bus: AnyBus, p: str) -> None:
    with pytest.raises(ValueError, match="binding"):
        await bus.subscribe(f"{p}.q", [], Recorder())
    with pytest.raises(ValueError, match="prefetch"):
        await bus.subscribe(f"{p}.q", ["#"], Recorder(), prefetch=0)


async def _dead_letters_soon(bus: AnyBus, queue: str, count: int) -> list[Any]:
    dead: list[Any] = []

    async def poll() -> None:
        nonlocal dead
        while len(dead) < count:
            dead = await bus.dead_letters(queue)
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout=5)
    return dead


# --- RabbitMQ only: what needs a broker that outlives the process -----------------------------


@pytest.mark.rabbitmq
async def test_unfinished_message_is_redelivered_to_the_next_consumer(
    rabbit_url: str, p: str
) -> None:
    first = RabbitBus(rabbit_url, "first", close_grace=0.1)
    await first.start()
    started = asyncio.Event()

    async def never_finishes(_: Envelope) -> None:
        started.set()
        await asyncio.Event().wait()

    await first.subscribe(f"{p}.q", [f"{p}.#"], never_finishes)
    await first.publish(event(f"{p}.trip.completed", 3))
    await asyncio.wait_for(started.wait(), 5)
    await first.close()  # the handler never returned: nothing was acked

    second = RabbitBus(rabbit_url, "second")
    await second.start()
    try:
        got = Recorder()
        await second.subscribe(f"{p}.q", [f"{p}.#"], got)
        await eventually(lambda: len(got.seen) == 1)
        assert got.seen[0].data["n"] == 3
    finally:
        await second.close()


@pytest.mark.rabbitmq
async def test_confirmed_messages_survive_the_publisher_leaving(rabbit_url: str, p: str) -> None:
    declare = RabbitBus(rabbit_url, "declare")
    await declare.start()
    await declare.subscribe(f"{p}.q", [f"{p}.#"], Recorder(fail_times=99), max_retries=0)
    await declare.close()  # the durable queue and its binding stay

    publisher = RabbitBus(rabbit_url, "publisher")
    await publisher.start()
    for n in range(20):
        await publisher.publish(event(f"{p}.trip.completed", n))
    await publisher.close()

    consumer = RabbitBus(rabbit_url, "consumer")
    await consumer.start()
    try:
        got = Recorder()
        await consumer.subscribe(f"{p}.q", [f"{p}.#"], got)
        await eventually(lambda: len(got.seen) == 20)
    finally:
        await consumer.close()


@pytest.mark.rabbitmq
async def test_envelope_headers_travel_as_amqp_headers(rabbit_url: str, p: str) -> None:
    bus = RabbitBus(rabbit_url, "headers")
    await bus.start()
    connection = await aio_pika.connect(rabbit_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind("fleet.events", routing_key=f"{p}.#")
        traceparent = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
        sent = event(f"{p}.trip.completed", traceparent=traceparent)

        await bus.publish(sent)

        message = await _get(queue)
        assert message.headers["traceparent"] == traceparent
        assert message.message_id == str(sent.event_id)
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert Envelope.decode(message.body) == sent
    finally:
        await connection.close()
        await bus.close()


@pytest.mark.rabbitmq
async def test_retried_message_carries_its_retry_count(rabbit_url: str, p: str) -> None:
    bus = RabbitBus(rabbit_url, "retry-count")
    await bus.start()
    connection = await aio_pika.connect(rabbit_url)
    try:
        await bus.subscribe(f"{p}.q", [f"{p}.#"], Recorder(fail_times=99), retry_delays=(30,))
        await bus.publish(event(f"{p}.trip.completed"))
        channel = await connection.channel()
        retry_queue = await channel.declare_queue(f"{p}.q.retry", passive=True)

        message = await _get(retry_queue)

        assert message.headers["x-retry-count"] == 1
        assert message.expiration == 30
    finally:
        await connection.close()
        await bus.close()


@pytest.mark.rabbitmq
async def test_publish_to_an_unreachable_broker_fails(p: str) -> None:
    bus = RabbitBus("amqp://guest:guest@127.0.0.1:5672/fleet_no_such_vhost", "nowhere")
    with pytest.raises((PublishError, aio_pika.exceptions.AMQPError, ConnectionError)):
        await asyncio.wait_for(bus.start(), 10)


async def _get(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    for _ in range(100):
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError("no message arrived")


@pytest.mark.rabbitmq
async def test_quorum_queues_retry_dead_letter_and_replay(rabbit_url: str, p: str) -> None:
    bus = RabbitBus(rabbit_url, "quorum", quorum=True)
    await bus.start()
    try:
        handler = Recorder(fail_times=2)
        await bus.subscribe(f"{p}.q", [f"{p}.#"], handler, max_retries=1, retry_delays=FAST)
        await bus.publish(event(f"{p}.trip.completed", 1))
        dead = await _dead_letters_soon(bus, f"{p}.q", 1)
        assert dead[0].attempts == 2

        assert await bus.replay_dead_letters(f"{p}.q") == 1

        await eventually(lambda: len(handler.seen) == 1)
    finally:
        await bus.close()
    vhost = rabbit_url.rsplit("/", 1)[1]
    listing = await asyncio.to_thread(_ctl, "list_queues", "-p", vhost, "name", "type")
    types = dict(line.split()[:2] for line in listing.splitlines() if line.startswith(p))
    assert types == {f"{p}.q": "quorum", f"{p}.q.retry": "quorum", f"{p}.q.dlq": "quorum"}
