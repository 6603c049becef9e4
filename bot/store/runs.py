"""Training runs: create, read, and compare-and-set state changes (each transition once)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from bot.domain.runs import Run, RunState
from bot.store.db import Database
from bot.store.rowmap import checked, from_row, values_of
from bot.store.schema import runs as table

ACTIVE = (RunState.QUEUED, RunState.RUNNING)


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

    async def active(self, backend: str | None = None) -> list[Run]:
        stmt = table.select().where(table.c.state.in_([str(s) for s in ACTIVE]))
        if backend is not None:
            stmt = stmt.where(table.c.backend == backend)
        return await self._many(stmt.order_by(table.c.id))

    async def recent(self, model: str | None = None, limit: int = 20) -> list[Run]:
        stmt = table.select().order_by(table.c.id.desc()).limit(limit)
        if model is not None:
            stmt = stmt.where(table.c.model == model)
        return await self._many(stmt)

    async def by_pipeline(self, project: str, pipeline_id: int) -> Run | None:
        stmt = table.select().where(table.c.project == project, table.c.pipeline_id == pipeline_id)
        found = await self._many(stmt.limit(1))
        return found[0] if found else None

    async def _many(self, stmt: sa.Select[Any]) -> list[Run]:
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [to_run(r) for r in rows]
