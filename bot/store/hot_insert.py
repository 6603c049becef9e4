"""The write an ack waits for, on SQLite: a prepared INSERT on a connection of its own.

Every slash command, click and reaction is an inbox insert before its 200 (group-committed,
one transaction a batch). Through SQLAlchemy a batch cost the event loop about 0.6 ms besides
SQLite's own work (checkout, the BEGIN's and the INSERT's execution contexts, the close), and
under a burst that time is taken from every other ack. Here the statement is compiled once by
SQLAlchemy (so the SQL and the parameters' conversions, UTC datetimes to text, are the same as
on every other path) and run with the standard ``sqlite3`` module on a connection the inserter
keeps, through the loop driver: statements on the loop, a lock held by another process retried
after pauses, the commit's sync in a thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

from bot.store.db import Database
from bot.store.loop_sqlite import LoopConnection


class HotInsert:
    """``statement`` (an ``INSERT ... RETURNING``) of rows that give ``columns``, one
    transaction per call."""

    def __init__(self, db: Database, statement: sa.Insert, columns: Sequence[str]) -> None:
        self.db = db
        dialect = db.engine.dialect
        compiled = statement.values({name: sa.bindparam(name) for name in columns}).compile(
            dialect=dialect
        )
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        table = statement.table
        self.convert: tuple[Callable[[Any], Any] | None, ...] = tuple(
            table.c[name].type.bind_processor(dialect) for name in self.names
        )
        self._holder: AsyncConnection | None = None  # keeps the connection out of the pool
        self._driver: LoopConnection | None = None  # the holder's, once checked out

    async def run(
        self, rows: Sequence[dict[str, Any]], committed: Callable[[list[tuple[Any, ...]]], None]
    ) -> None:
        """Insert ``rows`` in one transaction (the urgent turn at the write gate); ``committed``
        gets the rows the statement returned, on the loop, once the commit is durable."""
        params = [self._params(row) for row in rows]
        async with self.db.bounded(self.db.timeout):
            await self.db.gate.acquire(urgent=True)
            try:
                connection = self._driver or await self._connection()
                try:
                    await self._transaction(connection, params, committed)
                except BaseException:
                    await self.close()  # whatever state it is in, the next call starts afresh
                    raise
            finally:
                self.db.gate.release()

    def _params(self, row: dict[str, Any]) -> list[Any]:
        return [
            value if convert is None else convert(value)
            for value, convert in zip((row[name] for name in self.names), self.convert, strict=True)
        ]

    async def _transaction(
        self,
        connection: LoopConnection,
        params: list[list[Any]],
        committed: Callable[[list[tuple[Any, ...]]], None],
    ) -> None:
        """On the loop itself, not in SQLAlchemy's greenlet (whose hand-overs cost a batch more
        than its inserts): a lock another process holds is waited for, the commit's sync runs
        in a thread (see loop_sqlite). Once ``BEGIN IMMEDIATE`` has the lock, the inserts need
        no other."""
        cursor = connection.raw.cursor()
        try:
            await connection.run_async(cursor.execute, "BEGIN IMMEDIATE")
            returned: list[tuple[Any, ...]] = []
            for values in params:
                cursor.execute(self.sql, values)
                returned.extend(cursor.fetchall())
            await connection.commit_wrote(then=partial(committed, returned))
        finally:
            cursor.close()

    async def _connection(self) -> LoopConnection:
        if self._holder is None:
            self._holder = await self.db.engine.connect()
        raw = await self._holder.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, LoopConnection)
        self._driver = driver
        return driver

    async def close(self) -> None:
        """Hand the connection back (closed: an interrupted transaction ends with it)."""
        holder, self._holder, self._driver = self._holder, None, None
        if holder is not None:
            await holder.invalidate()
            await holder.close()
