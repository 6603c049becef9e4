"""Leases in the store: one holder per name at a time, a term that grows with every new holder.

The leader of a group of replicas holds the ``leader`` lease and renews it; when it stops
renewing, another replica takes the lease over once it has expired, with the next term.
Writes made for a leader carry its lease (``fenced``: a context variable that the tasks it
starts inherit); every such write transaction first reads the lease row (``FOR SHARE`` on
PostgreSQL, so a takeover waits for it to commit) and is refused with ``Deposed`` when the term
has moved on. A leader that was paused past its lease can therefore never act twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import BotError
from bot.store.db import Database, now
from bot.store.schema import leases

LEADER = "leader"


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    term: int
    expires_at: datetime


class Deposed(BotError):
    """A write made for a leader whose term has ended: another replica leads now."""

    kind = "deposed"


FENCE: ContextVar[Lease | None] = ContextVar("mlops_bot_fence", default=None)


@contextmanager
def fenced(lease: Lease | None) -> Iterator[None]:
    """Writes made inside (and by tasks started inside) carry ``lease``; None: no fence."""
    token = FENCE.set(lease)
    try:
        yield
    finally:
        FENCE.reset(token)


async def check_fence(conn: AsyncConnection) -> None:
    """Refuse this transaction if it carries a lease whose term has ended."""
    lease = FENCE.get()
    if lease is None:
        return
    t = leases
    query = sa.select(t.c.holder, t.c.term).where(t.c.name == lease.name)
    row = (await conn.execute(query.with_for_update(read=True))).first()
    if row is None or row.holder != lease.holder or row.term != lease.term:
        now_held = "nobody" if row is None else f"term {row.term}"
        raise Deposed(
            f"write refused: term {lease.term} of the {lease.name} lease has ended ({now_held} now)"
        )


class Leases:
    """The ``leases`` table: acquire, renew and release, the same statements on both databases."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def acquire(
        self, name: str, holder: str, duration: float, *, force: bool = False
    ) -> Lease | None:
        """Take ``name`` with the next term if it is free, expired or already ``holder``'s
        (or in any case with ``force``: for a store only one replica may use, SQLite)."""
        at = now()
        until = at + timedelta(seconds=duration)
        t = leases
        first = self.db.insert(t).values(
            name=name, holder=holder, term=1, acquired_at=at, expires_at=until
        )
        first = first.on_conflict_do_nothing(index_elements=[t.c.name])
        takeover = (
            t.update()
            .where(t.c.name == name)
            .where(
                sa.or_(
                    t.c.expires_at <= at, t.c.holder == holder, sa.true() if force else sa.false()
                )
            )
            .values(holder=holder, term=t.c.term + 1, acquired_at=at, expires_at=until)
        )
        with fenced(None):
            async with self.db.write() as conn:
                term = await conn.scalar(first.returning(t.c.term))
                if term is None:
                    term = await conn.scalar(takeover.returning(t.c.term))
        return None if term is None else Lease(name, holder, int(term), until)

    async def renew(self, lease: Lease, duration: float) -> Lease | None:
        """Extend ``lease``; None when its term has ended (someone else holds the name)."""
        until = now() + timedelta(seconds=duration)
        t = leases
        stmt = (
            t.update()
            .where(t.c.name == lease.name, t.c.holder == lease.holder, t.c.term == lease.term)
            .values(expires_at=until)
        )
        with fenced(None):
            async with self.db.write() as conn:
                renewed = (await conn.execute(stmt)).rowcount
        return Lease(lease.name, lease.holder, lease.term, until) if renewed else None

    async def release(self, lease: Lease) -> bool:
        """Let the lease expire now, so that another replica takes it at once (the row and
        its term stay: terms only ever grow)."""
        t = leases
        stmt = (
            t.update()
            .where(t.c.name == lease.name, t.c.holder == lease.holder, t.c.term == lease.term)
            .values(expires_at=now())
        )
        with fenced(None):
            async with self.db.write() as conn:
                return bool((await conn.execute(stmt)).rowcount)

    async def current(self, name: str) -> Lease | None:
        """The lease as stored (possibly expired), or None if nobody ever held it."""
        t = leases
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(t).where(t.c.name == name))).first()
        return None if row is None else Lease(row.name, row.holder, row.term, row.expires_at)
