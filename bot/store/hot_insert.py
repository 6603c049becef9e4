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
from sqlalchemy.util.concurrency import greenlet_spawn

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

    async def run(
        self, rows: Sequence[dict[str, Any]], committed: Callable[[list[tuple[Any, ...]]], None]
    ) -> None:
        """Insert ``rows`` in one transaction (the urgent turn at the write gate); ``committed``
        gets the rows the statement returned, on the loop, once the commit is durable."""
        params = [self._params(row) for row in rows]
        async with self.db.bounded(self.db.timeout), self.db.gate.hold(urgent=True):
            connection = await self._connection()
            try:
                await greenlet_spawn(self._transaction, connection, params, committed)
            except BaseException:
                await self.close()  # whatever state it is in, the next call starts afresh
                raise

    def _params(self, row: dict[str, Any]) -> list[Any]:
        return [
            value if convert is None else convert(value)
            for value, convert in zip((row[name] for name in self.names), self.convert, strict=True)
        ]

    def _transaction(
        self,
        connection: LoopConnection,
        params: list[list[Any]],
        committed: Callable[[list[tuple[Any, ...]]], None],
    ) -> None:
        """In SQLAlchemy's greenlet, where the driver awaits its lock waits and its commit."""
        cursor = connection.raw.cursor()
        try:
            connection.run(cursor.execute, "BEGIN IMMEDIATE")
            returned: list[tuple[Any, ...]] = []
            for values in params:
                cursor.execute(self.sql, values)
                returned.extend(cursor.fetchall())
            connection.commit(then=partial(committed, returned))
        finally:
            cursor.close()

    async def _connection(self) -> LoopConnection:
        if self._holder is None:
            self._holder = await self.db.engine.connect()
        raw = await self._holder.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, LoopConnection)
        return driver

    async def close(self) -> None:
        """Hand the connection back (closed: an interrupted transaction ends with it)."""
        holder, self._holder = self._holder, None
        if holder is not None:
            await holder.invalidate()
            await holder.close()
