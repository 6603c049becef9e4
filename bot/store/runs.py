"""Training runs: create, read, and compare-and-set state changes (each transition once).

Every read a command makes is bounded: pages with LIMIT, counts and GPU sums in SQL. Active runs
are selected with a literal condition (``IS_ACTIVE``) so that SQLite's planner can use the
partial indexes on them (a bound parameter never matches a partial index's WHERE).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from bot.domain.paging import Page, offset_of
from bot.domain.runs import Run, RunState
from bot.store.db import Database
from bot.store.rowmap import checked, from_row, values_of
from bot.store.schema import runs as table

ACTIVE = (RunState.QUEUED, RunState.RUNNING)
# The conditions of the partial indexes (v007), written as literals so that the planner uses them.
IS_ACTIVE = sa.text("runs.state IN ('queued', 'running')")
IS_FINISHED = sa.text("runs.state IN ('succeeded', 'failed', 'canceled')")
# Counts stop here: a listing says "50000+" rather than count a table without end.
COUNT_CAP = 50_000


def capped_count(*where: sa.ColumnElement[bool] | sa.TextClause) -> sa.Select[Any]:
    inner = sa.select(sa.literal(1)).select_from(table).where(*where).limit(COUNT_CAP)
    return sa.select(sa.func.count()).select_from(inner.subquery())


def to_run(row: sa.Row[Any]) -> Run:
    return from_row(Run, row, table, params=dict(row.params or {}))


class Runs:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, run: Run) -> Run:
        """Store a new run; its id comes from the database."""
        async with self.db.write() as conn:
            new_id = await conn.scalar(
                table.insert().values(values_of(run, table)).returning(table.c.id)
            )
            row = (await conn.execute(table.select().where(table.c.id == new_id))).one()
        return to_run(row)

    async def get(self, run_id: int) -> Run | None:
        async with self.db.read() as conn:
            row = (await conn.execute(table.select().where(table.c.id == run_id))).first()
        return to_run(row) if row else None

    async def update(
        self, run_id: int, *, only_if: Iterable[RunState] | None = None, **changes: Any
    ) -> Run | None:
        """Apply ``changes``; with ``only_if``, only while the run is in one of those states
        (None when it was not: someone else already made that transition)."""
        stmt = table.update().where(table.c.id == run_id).values(checked(changes, table))
        if only_if is not None:
            stmt = stmt.where(table.c.state.in_([str(s) for s in only_if]))
        async with self.db.write() as conn:
            result = await conn.execute(stmt.returning(*table.columns))
            row = result.first()
        return to_run(row) if row else None

    async def active(
        self, backend: str | None = None, *, after: int = 0, limit: int | None = None
    ) -> list[Run]:
        """Active runs in id order: all of them, or ``limit`` with ids above ``after``."""
        stmt = table.select().where(IS_ACTIVE, table.c.id > after)
        if backend is not None:
            stmt = stmt.where(table.c.backend == backend)
        return await self._many(stmt.order_by(table.c.id).limit(limit))

    async def active_page(self, model: str | None, number: int, size: int) -> Page[Run]:
        """Page ``number`` of the active runs (of ``model``), oldest first, and their count."""
        return await self._page(IS_ACTIVE, table.c.id, model, number, size)

    async def finished_page(self, model: str | None, number: int, size: int) -> Page[Run]:
        """Page ``number`` of the finished runs (of ``model``), newest first, and their count."""
        return await self._page(IS_FINISHED, table.c.id.desc(), model, number, size)

    async def _page(
        self,
        state: sa.TextClause,
        order: sa.ColumnElement[Any],
        model: str | None,
        number: int,
        size: int,
    ) -> Page[Run]:
        where: list[sa.ColumnElement[bool] | sa.TextClause] = [state]
        if model is not None:
            where.append(table.c.model == model)
        stmt = table.select().where(*where).order_by(order)
        stmt = stmt.limit(size).offset(offset_of(number, size))
        async with self.db.read() as conn:
            total = int(await conn.scalar(capped_count(*where)) or 0)
            rows = (await conn.execute(stmt)).all() if total else []
        return Page([to_run(r) for r in rows], total, max(1, number), size)

    async def gpus_in_use(self, requester: str, model: str) -> tuple[int, int]:
        """GPUs held by ``requester``'s active runs and by ``model``'s, summed in SQL."""
        mine = sa.func.coalesce(sa.func.sum(table.c.gpus), 0)
        by_user = sa.select(mine).where(IS_ACTIVE, table.c.requester == requester)
        by_model = sa.select(mine).where(IS_ACTIVE, table.c.model == model)
        stmt = sa.select(by_user.scalar_subquery(), by_model.scalar_subquery())
        async with self.db.read() as conn:
            user, of_model = (await conn.execute(stmt)).one()
        return int(user), int(of_model)

    async def active_of(self, requester: str, limit: int) -> list[Run]:
        """The requester's active runs, newest first, at most ``limit``."""
        stmt = table.select().where(IS_ACTIVE, table.c.requester == requester)
        return await self._many(stmt.order_by(table.c.id.desc()).limit(limit))

    async def get_many(self, run_ids: Iterable[int]) -> dict[int, Run]:
        """The runs with these ids (missing ones left out), in one query."""
        wanted = sorted(set(run_ids))
        if not wanted:
            return {}
        found = await self._many(table.select().where(table.c.id.in_(wanted)))
        return {r.id: r for r in found}

    async def recent(self, model: str | None = None, limit: int = 20) -> list[Run]:
        stmt = table.select().order_by(table.c.id.desc()).limit(limit)
        if model is not None:
            stmt = stmt.where(table.c.model == model)
        return await self._many(stmt)

    async def by_pipeline(self, project: str, pipeline_id: int) -> Run | None:
        stmt = table.select().where(table.c.project == project, table.c.pipeline_id == pipeline_id)
        found = await self._many(stmt.limit(1))
        return found[0] if found else None

    async def by_request(self, request: str) -> Run | None:
        """The run a Slack delivery (``trigger:<id>``) asked for, if it was recorded."""
        found = await self._many(table.select().where(table.c.request == request).limit(1))
        return found[0] if found else None

    async def _many(self, stmt: sa.Select[Any]) -> list[Run]:
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [to_run(r) for r in rows]
