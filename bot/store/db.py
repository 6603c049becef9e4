"""The connection plumbing every repository shares: bounded reads, write transactions, upserts."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store.engine import IMMEDIATE
from bot.store.errors import StoreTimeout
from bot.store.loop_sqlite import LoopSQLiteDialect
from bot.store.write_gate import WriteGate

Insert = postgresql.Insert | sqlite.Insert
LOOP_DRIVER = LoopSQLiteDialect.driver
Fence = Callable[[AsyncConnection], Awaitable[None]]


def now() -> datetime:
    return datetime.now(UTC)


class Bounded:
    """``async with``: the block must end within ``seconds``; running out of time, or a lock
    held elsewhere past SQLite's own wait, is a ``StoreTimeout`` (a class, not a generator
    context manager: the insert every ack waits on goes through it)."""

    __slots__ = ("_seconds", "_timeout")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._timeout = asyncio.timeout(seconds)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._timeout.__aexit__(kind, err, tb)
        except TimeoutError as expired:  # our time ran out: the block was cancelled
            err = expired
        if isinstance(err, TimeoutError) and not isinstance(err, StoreTimeout):
            raise StoreTimeout(f"the database did not answer within {self._seconds:g} s") from None
        # SQLAlchemy's wrapper, or sqlite3's own error from the inbox's prepared insert
        locked = isinstance(err, sa.exc.OperationalError | sqlite3.OperationalError)
        if locked and "database is locked" in str(getattr(err, "orig", err)):
            raise StoreTimeout(f"the database stayed locked for {self._seconds:g} s") from None


class Database:
    """An engine plus the one way to run a bounded read or a write transaction on it."""

    def __init__(self, engine: AsyncEngine, *, timeout: float) -> None:
        self.engine = engine
        self.writer = engine.execution_options(**{IMMEDIATE: True})
        self.timeout = timeout
        # SQLite's one write lock, queued for inside the process (see write_gate)
        self.gate = WriteGate(enabled=engine.dialect.name == "sqlite")
        # Run first in every write transaction; raises to refuse it (leader fencing).
        self.fence: Fence | None = None

    def bounded(self, seconds: float) -> Bounded:
        return Bounded(seconds)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.bounded(self.timeout):
            conn = self.engine.connect()
            try:
                await conn.start()
                yield conn
            finally:
                if conn.sync_connection is not None:
                    await self._close(conn)

    @asynccontextmanager
    async def write(
        self, seconds: float | None = None, *, urgent: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """One transaction; on SQLite it holds the write lock from its first statement, and
        writers of this process take turns at the gate (``urgent``: an ack waits for it). The
        fence check runs first, so a refused write changes nothing."""
        async with self.bounded(seconds or self.timeout):
            conn = self.writer.connect()
            try:
                async with self.gate.hold(urgent=urgent):
                    await conn.start()
                    async with conn.begin():
                        if self.fence is not None:
                            await self.fence(conn)
                        yield conn
            finally:
                if conn.sync_connection is not None:
                    await self._close(conn)

    async def _close(self, conn: AsyncConnection) -> None:
        """Close ``conn`` (after a write, once the gate is free), even if the caller is
        cancelled meanwhile.

        The loop driver's close never waits (it ends the transaction on the loop), so nothing
        can interrupt it; a network driver's can, so it runs shielded, as a task of its own
        (two more turns of the loop before the caller goes on)."""
        if self.engine.dialect.driver == LOOP_DRIVER:
            await conn.close()
        else:
            await asyncio.shield(conn.close())

    def insert(self, table: sa.Table) -> Insert:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)
