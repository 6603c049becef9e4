"""A/B experiments, their history and the votes on weight changes; state changes are
compare-and-set, and a unique index keeps one active experiment per model environment."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.domain.ab import ACTIVE, AbChange, AbState, ChangeState, Experiment, GuardReading
from bot.errors import Conflict
from bot.store.db import Database
from bot.store.rowmap import checked, from_row, values_of
from bot.store.schema import ab_changes as changes
from bot.store.schema import ab_experiments as table
from bot.store.schema import ab_votes as votes


def to_experiment(row: sa.Row[Any]) -> Experiment:
    readings = [GuardReading(**r) for r in (row.readings or [])]
    return from_row(Experiment, row, table, readings=readings)


def stored(values: dict[str, Any]) -> dict[str, Any]:
    """Readings as JSON-ready dicts."""
    if "readings" in values:
        values["readings"] = [asdict(r) for r in values["readings"]]
    return values


class AbExperimentsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, experiment: Experiment) -> Experiment:
        """Insert it; Conflict when the environment already has an active experiment."""
        values = stored(values_of(experiment, table))
        try:
            async with self.db.write() as conn:
                new_id = await conn.scalar(table.insert().values(values).returning(table.c.id))
        except sa.exc.IntegrityError:
            raise Conflict(
                f"{experiment.model}/{experiment.env} already has an A/B experiment running; "
                "promote or abort it first."
            ) from None
        found = await self.get(int(new_id or 0))
        assert found is not None
        return found

    async def get(self, experiment_id: int) -> Experiment | None:
        found = await self.many(table.select().where(table.c.id == experiment_id))
        return found[0] if found else None

    async def update(
        self, experiment_id: int, *, only_if: Iterable[AbState] | None = None, **values: Any
    ) -> Experiment | None:
        """Apply ``values``; with ``only_if``, only from one of those states (else None)."""
        stmt = table.update().where(table.c.id == experiment_id)
        stmt = stmt.values(checked(stored(values), table))
        if only_if is not None:
            stmt = stmt.where(table.c.state.in_([str(s) for s in only_if]))
        async with self.db.write() as conn:
            updated = (await conn.execute(stmt.returning(table.c.id))).first()
        return await self.get(experiment_id) if updated else None

    async def active(self, model: str | None = None, env: str | None = None) -> list[Experiment]:
        stmt = table.select().where(table.c.state.in_([str(s) for s in ACTIVE]))
        if model is not None:
            stmt = stmt.where(table.c.model == model)
        if env is not None:
            stmt = stmt.where(table.c.env == env)
        return await self.many(stmt.order_by(table.c.id))

    async def latest(self, model: str, env: str) -> Experiment | None:
        stmt = table.select().where(table.c.model == model, table.c.env == env)
        found = await self.many(stmt.order_by(table.c.id.desc()).limit(1))
        return found[0] if found else None

    async def many(self, stmt: sa.Select[Any]) -> list[Experiment]:
        async with self.db.read() as conn:
            return [to_experiment(row) for row in (await conn.execute(stmt)).all()]

    # -- history and pending weight changes ------------------------------------------------

    async def add_change(self, change: AbChange) -> AbChange:
        async with self.db.write() as conn:
            stmt = changes.insert().values(values_of(change, changes)).returning(changes.c.id)
            new_id = int(await conn.scalar(stmt) or 0)
        found = await self.change(new_id)
        assert found is not None
        return found

    async def change(self, change_id: int) -> AbChange | None:
        found = await self.changes_where(changes.c.id == change_id)
        return found[0] if found else None

    async def history(self, experiment_id: int) -> list[AbChange]:
        return await self.changes_where(changes.c.experiment_id == experiment_id)

    async def pending(self, experiment_id: int) -> AbChange | None:
        found = await self.changes_where(
            changes.c.experiment_id == experiment_id,
            changes.c.state == str(ChangeState.AWAITING_APPROVAL),
        )
        return found[-1] if found else None

    async def expired(self, now: datetime) -> list[AbChange]:
        return await self.changes_where(
            changes.c.state == str(ChangeState.AWAITING_APPROVAL), changes.c.expires_at < now
        )

    async def update_change(
        self, change_id: int, *, only_if: Iterable[ChangeState] | None = None, **values: Any
    ) -> AbChange | None:
        stmt = changes.update().where(changes.c.id == change_id)
        stmt = stmt.values(checked(values, changes))
        if only_if is not None:
            stmt = stmt.where(changes.c.state.in_([str(s) for s in only_if]))
        async with self.db.write() as conn:
            updated = (await conn.execute(stmt.returning(changes.c.id))).first()
        return await self.change(change_id) if updated else None

    async def changes_where(self, *where: sa.ColumnElement[bool]) -> list[AbChange]:
        async with self.db.read() as conn:
            rows = (await conn.execute(changes.select().where(*where).order_by(changes.c.id))).all()
            ids = [r.id for r in rows]
            cast = (
                await conn.execute(
                    votes.select().where(votes.c.change_id.in_(ids)).order_by(votes.c.at)
                )
            ).all()
        return [self.build(row, [v for v in cast if v.change_id == row.id]) for row in rows]

    def build(self, row: sa.Row[Any], cast: list[sa.Row[Any]]) -> AbChange:
        approvers = tuple(v.user for v in cast if v.approve)
        rejecters = tuple(v.user for v in cast if not v.approve)
        return from_row(AbChange, row, changes, approvers=approvers, rejecters=rejecters)

    # -- votes ----------------------------------------------------------------------------

    async def vote(
        self, change_id: int, user: str, *, approve: bool, via: str, at: datetime
    ) -> None:
        """Record (or change) one person's vote on a pending weight change."""
        row = {"change_id": change_id, "user": user, "approve": approve, "via": via, "at": at}
        stmt = self.db.insert(votes).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[votes.c.change_id, votes.c.user],
            set_={"approve": approve, "via": via, "at": at},
        )
        async with self.db.write() as conn:
            await conn.execute(stmt)

    async def withdraw(self, change_id: int, user: str, *, approve: bool) -> bool:
        """Remove a vote given by reaction (removing the reaction withdraws it)."""
        stmt = votes.delete().where(
            votes.c.change_id == change_id,
            votes.c.user == user,
            votes.c.approve == approve,
            votes.c.via == "reaction",
        )
        async with self.db.write() as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)
