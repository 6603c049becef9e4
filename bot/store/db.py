"""The connection plumbing every repository shares: bounded reads, write transactions, upserts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store.engine import IMMEDIATE, thread_engine
from bot.store.errors import StoreTimeout
from bot.store.write_gate import WriteGate
from bot.store.writer_thread import WriterThread

Insert = postgresql.Insert | sqlite.Insert
Fence = Callable[[AsyncConnection], Awaitable[None]]
T = TypeVar("T")


def now() -> datetime:
    return datetime.now(UTC)


class Database:
    """An engine plus the one way to run a bounded read or a write transaction on it."""

    def __init__(self, engine: AsyncEngine, *, timeout: float) -> None:
        self.engine = engine
        self.writer = engine.execution_options(**{IMMEDIATE: True})
        self.timeout = timeout
        # SQLite has one write lock: every write of this process queues here, acks first
        self.gate = WriteGate(enabled=engine.dialect.name == "sqlite")
        # Run first in every write transaction; raises to refuse it (leader fencing).
        self.fence: Fence | None = None
        self.fencing: Callable[[], bool] = lambda: False  # whether a fence applies now
        self._thread_engine = thread_engine(engine, timeout=timeout)
        self._thread = WriterThread()

    async def close(self) -> None:
        await self.engine.dispose()
        if self._thread_engine is not None:
            self._thread_engine.dispose()
        self._thread.close()

    async def transact(self, work: Callable[[sa.Connection], T], *, urgent: bool = False) -> T:
        """``work`` as one write transaction run in one go. On SQLite it runs whole in the
        store's writer thread, so it holds the write gate for as long as its SQL takes, not
        for an event-loop turn per statement (on a busy loop, many milliseconds each ack
        would wait); elsewhere, or when a fence applies, as ``write`` runs it."""
        if self._thread_engine is None or (self.fence is not None and self.fencing()):
            async with self.write(urgent=urgent) as conn:
                return await conn.run_sync(work)
        engine = self._thread_engine.execution_options(**{IMMEDIATE: True})

        def run() -> T:
            with engine.begin() as conn:
                return work(conn)

        async with self.bounded(self.timeout), self.gate.hold(urgent=urgent):
            return await self._thread.run(run)

    @asynccontextmanager
    async def bounded(self, seconds: float) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError:
            raise StoreTimeout(f"the database did not answer within {seconds:g} s") from None
        except sa.exc.OperationalError as err:
            if "database is locked" not in str(err.orig):
                raise
            raise StoreTimeout(f"the database stayed locked for {seconds:g} s") from None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.bounded(self.timeout), self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(
        self, seconds: float | None = None, *, urgent: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """One transaction; on SQLite it holds the write lock from its first statement, and
        waits its turn at the gate before (``urgent``: what an ack waits on, goes first). The
        fence check runs first, so a refused write changes nothing."""
        limit = seconds or self.timeout
        async with self.bounded(limit), self.gate.hold(urgent=urgent), self.writer.begin() as conn:
            if self.fence is not None:
                await self.fence(conn)
            yield conn

    def insert(self, table: sa.Table) -> Insert:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)
