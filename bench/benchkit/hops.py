"""Where a saga step's time goes, from the outbox and inbox rows the services wrote anyway.

One remote step is: the trip service writes the command to its outbox (`created_at`), its relay
publishes it (`published_at`: when the broker confirmed it, whenever the relay's mark ran), the
participant begins handling it (its inbox row's `handled_at`: the transaction's start, though the
claim is its last statement), writes the reply to its outbox, its relay publishes it, and the
trip service begins handling the reply. Reading these timestamps
needs the database, so the breakdown is only available on a stack the benchmark started.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import asyncpg
import orjson

from benchkit.report import Latency
from fleet.platform.services import module_named

PARTICIPANTS = ("user", "vehicle")  # billing left the booking saga (ADR 0007)
HOPS = (
    ("command: outbox → published (trip relay)", "cmd_created", "cmd_published"),
    ("command: published → handled (broker, consumer)", "cmd_published", "cmd_claimed"),
    ("participant: handled → reply written", "cmd_claimed", "reply_created"),
    ("reply: outbox → published (participant relay)", "reply_created", "reply_published"),
    ("reply: published → handled (broker, consumer)", "reply_published", "reply_claimed"),
)


async def breakdown(database_url: str) -> dict[str, Latency]:
    """Latency of each hop over every saga command and its reply."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        outbox: dict[str, list[Any]] = {}
        claimed: dict[Any, dt.datetime] = {}
        for name in ("trip", *PARTICIPANTS):
            schema = module_named(name).schema
            outbox[name] = await conn.fetch(
                f'SELECT id, routing_key, body, created_at, published_at FROM "{schema}".outbox'  # noqa: S608 - fixed names
            )
            for row in await conn.fetch(f'SELECT event_id, handled_at FROM "{schema}".inbox'):  # noqa: S608
                claimed[row["event_id"]] = row["handled_at"]
    finally:
        await conn.close()
    commands = {str(r["id"]): r for r in outbox["trip"] if r["routing_key"] != "trip.saga-reply"}
    samples: dict[str, list[float]] = defaultdict(list)
    for name in PARTICIPANTS:
        for reply in outbox[name]:
            if reply["routing_key"] != "trip.saga-reply":
                continue
            cause = orjson.loads(reply["body"]).get("causation_id")
            command = commands.get(str(cause))
            if command is None:
                continue
            times = {
                "cmd_created": command["created_at"],
                "cmd_published": command["published_at"],
                "cmd_claimed": claimed.get(command["id"]),
                "reply_created": reply["created_at"],
                "reply_published": reply["published_at"],
                "reply_claimed": claimed.get(reply["id"]),
            }
            for name, start, end in HOPS:
                if times[start] is not None and times[end] is not None:
                    samples[name].append((times[end] - times[start]).total_seconds())
    return {name: Latency.of(samples[name]) for name, _, _ in HOPS}
