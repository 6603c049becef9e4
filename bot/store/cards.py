"""The Slack outbox: each card's desired state, claimed and settled by the reconciler.

``desire`` records what a card should show (a new version when it changes); the reconciler
``claim``s due rows under a lease (so two replicas never send the same card at once), sends
them, and marks each ``synced`` (with where the message is) or ``failed`` (with when to retry).
Writes take their turn at the store's write gate, behind the inserts acks wait for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.cards import CardRef, CardState
from bot.store.db import Database, now
from bot.store.schema import card_states, cards

Blocks = list[dict[str, Any]]


def _blocks_text(blocks: Blocks | None) -> str | None:
    return None if blocks is None else json.dumps(blocks, separators=(",", ":"))


def _due(at: datetime) -> sa.ColumnElement[bool]:
    t = card_states
    return t.c.dirty.is_(True) & (t.c.retry_at.is_(None) | (t.c.retry_at <= at))


def _state(row: sa.Row[Any], where: CardRef | None) -> CardState:
    return CardState(
        key=row.key,
        channel=row.channel,
        text=row.text,
        blocks=json.loads(row.blocks) if row.blocks is not None else None,
        version=row.version,
        synced=row.synced,
        generation=row.generation,
        created_at=row.created_at,
        parent=row.parent,
        attempts=row.attempts,
        claims=row.claims,
        error=row.error,
        where=where,
    )


class CardStates:
    """The ``card_states`` table (what each card should show) beside ``cards`` (where it is)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every committed change of a desired state (in-process)."""
        self._listeners.append(listener)

    async def desire(
        self,
        key: str,
        channel: str,
        text: str,
        blocks: Blocks | None = None,
        *,
        parent: str | None = None,
        fresh: bool = False,
    ) -> bool:
        """Record what ``key`` should show; ``fresh`` starts a new message (the old one stays as
        history). True when this changed anything."""
        at = now()
        values = {"channel": channel, "parent": parent, "text": text}
        values["blocks"] = _blocks_text(blocks)
        async with self.db.write() as conn:
            changed = await self._desire(conn, key, values, fresh=fresh, at=at)
        if changed:
            for listener in self._listeners:
                listener()
        return changed

    async def _desire(
        self,
        conn: AsyncConnection,
        key: str,
        values: dict[str, Any],
        *,
        fresh: bool,
        at: datetime,
    ) -> bool:
        t = card_states
        first = {
            "version": 1,
            "synced": 0,
            "dirty": True,
            "generation": 1,
            "attempts": 0,
            "claims": 0,
        }
        insert = self.db.insert(t).values(key=key, **values, **first, created_at=at, updated_at=at)
        insert = insert.on_conflict_do_nothing(index_elements=[t.c.key])
        if await conn.scalar(insert.returning(t.c.key)) is not None:
            return True
        query = sa.select(t).where(t.c.key == key).with_for_update()
        row = (await conn.execute(query)).one()
        same = all(getattr(row, name) == value for name, value in values.items())
        if same and not fresh:
            return False
        change: dict[str, Any] = {**values, "version": row.version + 1, "dirty": True}
        if fresh:
            change |= {"generation": row.generation + 1, "created_at": at}
            await conn.execute(cards.delete().where(cards.c.key == key))
        await conn.execute(t.update().where(t.c.key == key).values(**change, updated_at=at))
        return True

    async def revise(self, key: str, text: str, blocks: Blocks | None = None) -> bool:
        """Change what an existing card shows (False when there is no such card)."""
        state = await self.get(key)
        if state is None:
            return False
        return await self.desire(key, state.channel, text, blocks, parent=state.parent)

    async def get(self, key: str) -> CardState | None:
        t = card_states
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(t).where(t.c.key == key))).first()
            where = await self._where(conn, key)
        return None if row is None else _state(row, where)

    async def where(self, key: str) -> CardRef | None:
        async with self.db.read() as conn:
            return await self._where(conn, key)

    async def _where(self, conn: AsyncConnection, key: str) -> CardRef | None:
        row = (await conn.execute(sa.select(cards).where(cards.c.key == key))).first()
        return None if row is None else CardRef(row.key, row.channel, row.ts)

    async def claim(self, *, lease: float, limit: int) -> list[CardState]:
        """Take up to ``limit`` due cards for ``lease`` seconds (their retry waits that long
        if this process dies holding them); cards first, then thread replies."""
        t, at = card_states, now()
        pick = sa.select(t.c.key).where(_due(at)).order_by(t.c.parent.is_not(None), t.c.updated_at)
        # replicas claiming at once take different cards instead of queueing on the same rows
        pick = pick.with_for_update(skip_locked=True)
        async with self.db.write() as conn:
            keys = list((await conn.scalars(pick.limit(limit))).all())
            if not keys:
                return []
            stmt = t.update().where(t.c.key.in_(keys), _due(at))
            lease_end = at + timedelta(seconds=lease)
            stmt = stmt.values(retry_at=lease_end, claims=t.c.claims + 1).returning(*t.c)
            rows = list((await conn.execute(stmt)).all())
            found = await conn.execute(sa.select(cards).where(cards.c.key.in_(keys)))
            located = {r.key: CardRef(r.key, r.channel, r.ts) for r in found}
        states = [_state(row, located.get(row.key)) for row in rows]
        return sorted(states, key=lambda s: s.parent is not None)

    async def synced(self, state: CardState, where: CardRef, *, pause: float) -> bool:
        """Slack shows ``state`` at ``where``; the next edit of the card waits ``pause``
        seconds. False when a fresh post of the key began meanwhile (nothing recorded)."""
        t, at = card_states, now()
        stmt = t.update().where(t.c.key == state.key, t.c.generation == state.generation)
        stmt = stmt.values(
            synced=state.version,
            dirty=t.c.version > state.version,
            attempts=0,
            claims=0,
            error=None,
            retry_at=at + timedelta(seconds=pause),
            updated_at=at,
        )
        place = {"channel": where.channel, "ts": where.ts, "updated_at": at}
        upsert = self.db.insert(cards).values(key=state.key, **place)
        upsert = upsert.on_conflict_do_update(index_elements=[cards.c.key], set_=place)
        async with self.db.write() as conn:
            if (await conn.execute(stmt)).rowcount == 0:
                return False
            await conn.execute(upsert)
        return True

    async def failed(self, key: str, error: str, *, retry_in: float) -> None:
        """The attempt failed: count it and retry no sooner than ``retry_in`` seconds."""
        t, at = card_states, now()
        stmt = t.update().where(t.c.key == key)
        stmt = stmt.values(
            attempts=t.c.attempts + 1,
            claims=0,
            error=error[:500],
            retry_at=at + timedelta(seconds=retry_in),
            updated_at=at,
        )
        async with self.db.write() as conn:
            await conn.execute(stmt)

    async def retry_now(self) -> None:
        """Slack answers again: cards backing off after transient failures are due at once."""
        t = card_states
        stmt = t.update().where(t.c.dirty.is_(True), t.c.attempts > 0, t.c.retry_at > now())
        async with self.db.write() as conn:
            await conn.execute(stmt.values(retry_at=None))

    async def forget_where(self, key: str) -> None:
        """The message is gone from Slack: the next attempt posts (or finds) it again."""
        async with self.db.write() as conn:
            await conn.execute(cards.delete().where(cards.c.key == key))

    async def release(self, keys: Collection[str]) -> None:
        """Give up the lease on ``keys`` (this process stops): due again at once."""
        if not keys:
            return
        t = card_states
        stmt = t.update().where(t.c.key.in_(list(keys)), t.c.dirty.is_(True))
        async with self.db.write() as conn:
            await conn.execute(stmt.values(retry_at=None))

    async def unsettled(self) -> int:
        """Cards not yet shown that are not backing off after a failure (queued or sending)."""
        t = card_states
        query = sa.select(sa.func.count()).where(t.c.dirty.is_(True), t.c.attempts == 0)
        async with self.db.read() as conn:
            return int(await conn.scalar(query) or 0)

    async def next_due(self) -> datetime | None:
        t = card_states
        query = sa.select(sa.func.min(t.c.retry_at)).where(t.c.dirty.is_(True))
        async with self.db.read() as conn:
            has_now = await conn.scalar(
                sa.select(sa.func.count()).where(t.c.dirty.is_(True), t.c.retry_at.is_(None))
            )
            if has_now:
                return now()
            value: datetime | None = await conn.scalar(query)
        return value

    async def pending(self, limit: int = 100) -> list[CardState]:
        """Cards Slack does not show as asked yet, oldest change first (for the CLI, benches)."""
        t = card_states
        query = sa.select(t).where(t.c.dirty.is_(True)).order_by(t.c.updated_at).limit(limit)
        async with self.db.read() as conn:
            rows = list((await conn.execute(query)).all())
        return [_state(row, None) for row in rows]
