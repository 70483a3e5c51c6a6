"""Every service forgets handled message ids past their retention, on its own, from start-up."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

from sqlalchemy import insert, select

from fleet.common.app import FleetState, create_app
from fleet.common.testing import app_client, local_settings
from fleet.platform.services import all_modules


async def test_each_service_purges_inbox_entries_older_than_the_retention_at_start_up(
    tmp_path: Path,
) -> None:
    settings = local_settings(tmp_path, inbox_retention_hours=24)
    old, recent = uuid.uuid4(), uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    app = create_app(all_modules(), settings, migrate_on_startup=True, access_log=False)
    async with app_client(app):
        state: FleetState = app.state.fleet
        for rt in state.services.values():
            assert rt.inbox is not None, rt.name
            async with rt.db.transaction() as session:
                await session.execute(
                    insert(rt.inbox),
                    [
                        {
                            "consumer": "t",
                            "event_id": old,
                            "handled_at": now - dt.timedelta(days=2),
                        },
                        {"consumer": "t", "event_id": recent, "handled_at": now},
                    ],
                )

    # The next start-up purges (in the background, at once, then every 10 minutes).
    app = create_app(all_modules(), settings, migrate_on_startup=True, access_log=False)
    async with app_client(app):
        state = app.state.fleet
        for rt in state.services.values():
            assert rt.inbox is not None
            for _ in range(100):
                async with rt.db.session() as session:
                    ids = set((await session.execute(select(rt.inbox.c.event_id))).scalars())
                if old not in ids:
                    break
                await asyncio.sleep(0.05)
            assert old not in ids, rt.name
            assert recent in ids, rt.name
