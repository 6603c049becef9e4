"""Deployments and their approval votes; state changes are compare-and-set (each happens once)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.domain.deploys import ApprovalVote, Deployment, DeployState
from bot.store.db import Database
from bot.store.rowmap import checked, from_row, values_of
from bot.store.schema import approval_votes as votes
from bot.store.schema import deployments as table


class Deployments:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, deployment: Deployment) -> Deployment:
        async with self.db.write() as conn:
            stmt = table.insert().values(values_of(deployment, table)).returning(table.c.id)
            new_id = await conn.scalar(stmt)
        found = await self.get(int(new_id or 0))
        assert found is not None
        return found

    async def get(self, deploy_id: int) -> Deployment | None:
        found = await self.many(table.select().where(table.c.id == deploy_id))
        return found[0] if found else None

    async def update(
        self, deploy_id: int, *, only_if: Iterable[DeployState] | None = None, **changes: Any
    ) -> Deployment | None:
        """Apply ``changes``; with ``only_if``, only from one of those states (None otherwise:
        the transition already happened elsewhere)."""
        stmt = table.update().where(table.c.id == deploy_id).values(checked(changes, table))
        if only_if is not None:
            stmt = stmt.where(table.c.state.in_([str(s) for s in only_if]))
        async with self.db.write() as conn:
            updated = (await conn.execute(stmt.returning(table.c.id))).first()
        return await self.get(deploy_id) if updated else None

    async def in_states(self, *states: DeployState) -> list[Deployment]:
        stmt = table.select().where(table.c.state.in_([str(s) for s in states]))
        return await self.many(stmt.order_by(table.c.id))

    async def history(
        self, model: str, env: str | None = None, limit: int = 10
    ) -> list[Deployment]:
        stmt = table.select().where(table.c.model == model)
        if env is not None:
            stmt = stmt.where(table.c.env == env)
        return await self.many(stmt.order_by(table.c.id.desc()).limit(limit))

    async def last_good(
        self, model: str, env: str, *, before: int | None = None, digest: str | None = None
    ) -> Deployment | None:
        """The newest succeeded deploy there (older than ``before``, of ``digest`` if given)."""
        stmt = table.select().where(
            table.c.model == model,
            table.c.env == env,
            table.c.state == str(DeployState.SUCCEEDED),
        )
        if before is not None:
            stmt = stmt.where(table.c.id < before)
        if digest is not None:
            stmt = stmt.where(table.c.digest == digest)
        found = await self.many(stmt.order_by(table.c.id.desc()).limit(1))
        return found[0] if found else None

    async def vote(self, vote: ApprovalVote) -> None:
        """Record (or change) one person's vote on a deploy."""
        row = {
            "deploy_id": vote.deploy_id,
            "user": vote.user,
            "approve": vote.approve,
            "via": vote.via,
            "at": vote.at,
        }
        stmt = self.db.insert(votes).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[votes.c.deploy_id, votes.c.user],
            set_={"approve": vote.approve, "via": vote.via, "at": vote.at},
        )
        async with self.db.write() as conn:
            await conn.execute(stmt)

    async def withdraw(self, deploy_id: int, user: str, *, approve: bool) -> bool:
        """Remove a vote given by reaction (removing the reaction withdraws it)."""
        stmt = votes.delete().where(
            votes.c.deploy_id == deploy_id,
            votes.c.user == user,
            votes.c.approve == approve,
            votes.c.via == "reaction",
        )
        async with self.db.write() as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def expired(self, now: datetime) -> list[Deployment]:
        stmt = table.select().where(
            table.c.state == str(DeployState.AWAITING_APPROVAL), table.c.expires_at < now
        )
        return await self.many(stmt)

    async def many(self, stmt: sa.Select[Any]) -> list[Deployment]:
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt)).all()
            ids = [r.id for r in rows]
            cast = (
                await conn.execute(
                    votes.select().where(votes.c.deploy_id.in_(ids)).order_by(votes.c.at)
                )
            ).all()
        return [self.build(row, [v for v in cast if v.deploy_id == row.id]) for row in rows]

    def build(self, row: sa.Row[Any], cast: list[sa.Row[Any]]) -> Deployment:
        approvers = tuple(v.user for v in cast if v.approve)
        rejecters = tuple(v.user for v in cast if not v.approve)
        return from_row(Deployment, row, table, approvers=approvers, rejecters=rejecters)
