"""The webhook inbox: every accepted delivery, stored before it is answered, once per key.

A row is ``pending`` until the worker has applied its effect; then ``processed``; ``ignored``
when the bot has no use for it; ``failed`` when it kept failing. Rows that are no longer pending
are pruned after the retention, which is also how long a redelivery is recognised.

Any replica may process any pending row: it ``claim``s a batch first (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so replicas claiming together take different rows; SQLite's single
writer needs nothing), which hides the rows from the others until ``claimed_until``. The
claimer renews its claims while it works on them; a replica that dies holding claims leaves
them to the others once they lapse. The replica that stores a delivery has the first refusal
of it: the row is written claimed for ``first_refusal`` seconds, during which only that replica
(which knows the row's id) claims it, so the one that answered Slack runs what it answered
unless it is too busy or dies.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.db import Database, now
from bot.store.hot_insert import HotInsert
from bot.store.inbox_sql import InboxStatements, Status
from bot.store.refusals import FirstRefusals
from bot.store.schema import inbox


@dataclass(frozen=True)
class Delivery:
    """One delivery as the intake stores it."""

    key: str
    kind: str
    project: str | None
    body: str
    ignored: bool = False


@dataclass(frozen=True)
class InboxItem:
    """One stored delivery, as the worker reads it."""

    id: int
    key: str
    kind: str
    project: str | None
    body: str
    attempts: int
    received_at: datetime


@dataclass(frozen=True)
class InboxRow:
    """One stored delivery with its outcome, for `mlops-bot inbox`."""

    key: str
    kind: str
    project: str | None
    status: str
    attempts: int
    received_at: datetime
    error: str | None


@dataclass
class BatchResult:
    """What became of each delivery of a batch the worker handed out, by inbox id."""

    done: list[int] = field(default_factory=list)
    ignored: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


def _settle(batch: list[tuple[Delivery, asyncio.Future[bool]]], stored: list[bool]) -> None:
    """Answer each put of a written batch: whether its row is new."""
    for (_, future), new in zip(batch, stored, strict=True):
        if not future.done():
            future.set_result(new)


COLUMNS = (
    "key",
    "kind",
    "project",
    "status",
    "body",
    "received_at",
    "attempts",
    "done_at",
    "claimed_until",
)
"""The columns a stored delivery starts with (``_values``); the others start NULL."""


def _values(delivery: Delivery, at: datetime, refusal: timedelta) -> dict[str, Any]:
    return {
        "key": delivery.key,
        "kind": delivery.kind,
        "project": delivery.project,
        "status": Status.IGNORED if delivery.ignored else Status.PENDING,
        "body": delivery.body,
        "received_at": at,
        "attempts": 0,
        "done_at": at if delivery.ignored else None,
        "claimed_until": None if delivery.ignored or not refusal else at + refusal,
    }


def _item(row: sa.Row[Any]) -> InboxItem:
    return InboxItem(
        id=row.id,
        key=row.key,
        kind=row.kind,
        project=row.project,
        body=row.body,
        attempts=row.attempts,
        received_at=row.received_at,
    )


class Inbox:
    def __init__(
        self,
        db: Database,
        *,
        table: sa.Table = inbox,
        max_batch: int = 500,
        first_refusal: float = 2.0,
    ) -> None:
        self.db = db
        self.table = table
        self.max_batch = max_batch
        self.first_refusal = timedelta(seconds=first_refusal)
        self._mine = FirstRefusals()
        self._sql = InboxStatements.of(table)
        self._queue: list[tuple[Delivery, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        # One statement for every batch size: executed with a list of rows, SQLAlchemy sends
        # it as one multi-row INSERT (insertmanyvalues) from a compiled form it caches, where a
        # .values() of N rows would be compiled anew for each new N.
        insert = db.insert(table).on_conflict_do_nothing(index_elements=[table.c.key])
        self._put_stmt = insert.returning(table.c.id, table.c.key)
        # on SQLite the same statement, prepared once, on a connection of its own
        self._hot = HotInsert(db, self._put_stmt, COLUMNS) if db.gate.enabled else None

    async def put(self, delivery: Delivery) -> bool:
        """Store ``delivery`` durably; False when its key is already stored (a redelivery).

        Group commit: puts that arrive while a transaction is being written share the next
        one, and each returns only after the transaction holding its row has committed.
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((delivery, future))
        if self._writer is None:
            # a context of its own: whoever happens to start the writer lends it nothing (no
            # leader's fence reaches the writes it makes for every request); its first step
            # runs after the callbacks already due, so their puts join the batch
            self._writer = asyncio.get_running_loop().create_task(
                self._write_queued(), context=contextvars.Context()
            )
        return await future

    async def _write_queued(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                await self._write_batch(batch)
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[tuple[Delivery, asyncio.Future[bool]]]) -> None:
        """One transaction for the batch; if it fails, one each, so a bad row fails alone."""
        try:
            await self.put_many(
                [delivery for delivery, _ in batch], committed=partial(_settle, batch)
            )
        except Exception as err:
            if len(batch) > 1:
                for single in batch:
                    await self._write_batch([single])
            elif not batch[0][1].done():
                batch[0][1].set_exception(err)

    async def put_many(
        self,
        deliveries: Sequence[Delivery],
        *,
        committed: Callable[[list[bool]], None] | None = None,
    ) -> list[bool]:
        """Store several deliveries in one transaction; for each, False when already stored.

        ``committed`` gets the same list as soon as the transaction has committed: on SQLite
        from the callback that hands the commit back to the loop, so the puts waiting for it
        go on in the loop's next turn, with the writer (not one turn after it).
        """
        rows = self._rows(deliveries)
        stored: list[bool] = []

        def settle(inserted: Iterable[tuple[Any, ...]]) -> None:
            stored.extend(self._stored(deliveries, {key: row_id for row_id, key in inserted}))
            if committed is not None:
                committed(stored)

        if self._hot is not None:
            await self._hot.run(rows, settle)
        else:
            async with self.db.write(urgent=True) as conn:
                inserted = list(await conn.execute(self._put_stmt, rows))
            settle(inserted)
        return stored

    async def close(self) -> None:
        """Hand back the connection the inserts keep (before the engine is disposed)."""
        if self._hot is not None:
            await self._hot.close()

    def _rows(self, deliveries: Sequence[Delivery]) -> list[dict[str, Any]]:
        at = now()
        return [_values(d, at, self.first_refusal) for d in deliveries]

    def _stored(self, deliveries: Sequence[Delivery], ids: dict[str, int]) -> list[bool]:
        """For each delivery, whether this insert stored it (False: its key was there), and
        the first refusal of each stored row."""
        stored = set(ids)
        if self.first_refusal:
            until = time.monotonic() + self.first_refusal.total_seconds()
            held = (ids[d.key] for d in deliveries if d.key in ids and not d.ignored)
            self._mine.take(held, until)
        seen: set[str] = set()
        result = []
        for delivery in deliveries:
            result.append(delivery.key in stored and delivery.key not in seen)
            seen.add(delivery.key)
        return result

    async def next_batch(self, limit: int, *, skip: Collection[int] = ()) -> list[InboxItem]:
        """The oldest pending deliveries that are due and unclaimed, leaving out ``skip``."""
        async with self.db.read() as conn:
            found = await conn.execute(self._sql.oldest, self._due_now(limit, skip))
            return [_item(row) for row in found]

    def _due_now(self, limit: int, skip: Collection[int]) -> dict[str, Any]:
        """The parameters of a claim's statements, now. ``mine``: the oldest ``limit`` rows
        (not in ``skip``) this replica stored whose first refusal has not run out. Each of
        them is due to this replica, so none of its younger rows can be among the oldest
        ``limit`` due rows: a query needs these ids only, however many were stored in a
        burst (each id is one more parameter the query binds)."""
        mine = self._mine.oldest(limit, skip)
        return {"at": now(), "mine": mine, "skip": list(skip), "limit": limit}

    async def claim(
        self, limit: int, *, lease: float, skip: Collection[int] = ()
    ) -> list[InboxItem]:
        """Take the oldest due deliveries (not in ``skip``) for ``lease`` seconds; rows another
        replica is claiming at this moment are skipped, not waited for."""
        if not await self.next_batch(1, skip=skip):
            return []  # a read first: idle polls take no write lock
        due = self._due_now(limit, skip)
        async with self.db.write() as conn:
            ids = list((await conn.scalars(self._sql.pick, due)).all())
            if not ids:
                return []
            until = due["at"] + timedelta(seconds=lease)
            taken = await conn.execute(self._sql.take, due | {"ids": ids, "until": until})
            rows = taken.all()
        for row in rows:
            self._mine.drop(row.id)
        return sorted((_item(row) for row in rows), key=lambda item: item.id)

    async def renew_claims(self, ids: Collection[int], *, lease: float) -> None:
        """Keep claiming the pending rows ``ids`` (work on them goes on) for ``lease`` s."""
        if ids:
            until = now() + timedelta(seconds=lease)
            async with self.db.write() as conn:
                await conn.execute(self._sql.renew, {"ids": list(ids), "until": until})

    async def release_claims(self, ids: Collection[int] | None = None) -> None:
        """Give up the claims on ``ids`` (all claims when None: a lone replica starting)."""
        t = self.table
        stmt = t.update().where(t.c.status == Status.PENDING, t.c.claimed_until.is_not(None))
        if ids is not None:
            if not ids:
                return
            stmt = stmt.where(t.c.id.in_(list(ids)))
        async with self.db.write() as conn:
            await conn.execute(stmt.values(claimed_until=None))

    async def mark_processed(self, ids: Iterable[int]) -> None:
        await self._finish(ids, Status.PROCESSED, None)

    async def mark_ignored(self, ids: Iterable[int], reason: str) -> None:
        await self._finish(ids, Status.IGNORED, reason)

    async def mark_failed(
        self, ids: Iterable[int], error: str, *, retry_at: datetime | None
    ) -> None:
        """Count a failed attempt: try again at ``retry_at``, or give up when it is None
        (a pending row has no ``done_at`` until it ends)."""
        wanted = list(ids)
        if not wanted:
            return
        gives_up = retry_at is None
        params = {
            "ids": wanted,
            "status": Status.FAILED if gives_up else Status.PENDING,
            "done_at": now() if gives_up else None,
            "error": error[:2000],
            "retry_at": retry_at,
        }
        async with self.db.write() as conn:
            await conn.execute(self._sql.fail, params)

    async def _finish(self, ids: Iterable[int], status: Status, error: str | None) -> None:
        wanted = list(ids)
        if not wanted:
            return
        async with self.db.write() as conn:
            await self.finish_in(conn, wanted, status, error)

    async def finish_in(
        self,
        conn: AsyncConnection,
        ids: list[int],
        status: Status = Status.PROCESSED,
        error: str | None = None,
    ) -> None:
        """End the pending rows ``ids`` in the caller's transaction ``conn``."""
        params = {"ids": ids, "status": status, "done_at": now(), "error": error}
        await conn.execute(self._sql.finish, params)

    async def prune(self, older_than: datetime) -> int:
        """Delete rows finished before ``older_than``; pending rows always stay."""
        stmt = self.table.delete().where(
            self.table.c.status != Status.PENDING, self.table.c.done_at < older_than
        )
        async with self.db.write() as conn:
            result = await conn.execute(stmt)
        return result.rowcount

    async def rows(self, *, status: Status | None = None, limit: int = 100) -> list[InboxRow]:
        """The newest deliveries (of one status), newest first."""
        t = self.table
        query = sa.select(t).order_by(t.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(t.c.status == status)
        async with self.db.read() as conn:
            return [
                InboxRow(r.key, r.kind, r.project, r.status, r.attempts, r.received_at, r.error)
                for r in await conn.execute(query)
            ]

    async def retry(self, key: str) -> bool:
        """Make a failed delivery pending again, with fresh attempts; False if there is none."""
        t = self.table
        stmt = (
            t.update()
            .where(t.c.key == key, t.c.status == Status.FAILED)
            .values(status=Status.PENDING, attempts=0, retry_at=None, done_at=None, error=None)
        )
        async with self.db.write() as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def counts(self) -> dict[str, int]:
        """How many rows are in each status (for readiness, tests and the bench)."""
        query = sa.select(self.table.c.status, sa.func.count()).group_by(self.table.c.status)
        async with self.db.read() as conn:
            rows = await conn.execute(query)
            return {str(status): int(n) for status, n in rows}

    async def next_due(self, *, skip: Collection[int] = ()) -> datetime | None:
        """When the earliest pending delivery that waits (for a retry, or for another
        replica's claim to lapse) may become due; at worst a little early."""
        t = self.table
        query = sa.select(sa.func.min(t.c.retry_at), sa.func.min(t.c.claimed_until))
        query = query.where(t.c.status == Status.PENDING)
        if skip:
            query = query.where(t.c.id.not_in(list(skip)))
        async with self.db.read() as conn:
            row = (await conn.execute(query)).one()
        times = [value for value in row if isinstance(value, datetime)]
        return min(times) if times else None
