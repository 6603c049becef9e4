"""What each CI card shows, merged from its events: one JSON document per card key."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.store.db import Database, now
from bot.store.schema import ci_state as table


class CiStates:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_many(self, keys: Collection[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        query = sa.select(table.c.key, table.c.state).where(table.c.key.in_(list(keys)))
        async with self.db.read() as conn:
            return {row.key: dict(row.state) for row in await conn.execute(query)}

    async def put_many(self, states: Mapping[str, dict[str, Any]]) -> None:
        """Insert or replace every state in one transaction."""
        if not states:
            return
        at = now()
        rows = [{"key": key, "state": state, "updated_at": at} for key, state in states.items()]
        stmt = self.db.insert(table).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"state": stmt.excluded.state, "updated_at": stmt.excluded.updated_at},
        )
        async with self.db.write() as conn:
            await conn.execute(stmt)

    async def prune(self, older_than: datetime) -> int:
        """Forget cards untouched since ``older_than`` (their Slack messages stay)."""
        async with self.db.write() as conn:
            result = await conn.execute(table.delete().where(table.c.updated_at < older_than))
        return result.rowcount
