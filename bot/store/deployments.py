"""Deployments and their approval votes; state changes are compare-and-set (each happens once)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot.domain.deploys import ApprovalVote, Deployment, DeployState
from bot.domain.paging import Page, offset_of
from bot.store.db import Database, now
from bot.store.rowmap import checked, from_row, values_of
from bot.store.schema import approval_votes as votes
from bot.store.schema import deployments as table
from bot.store.schema import locks

COUNT_CAP = 50_000
LEASED = (
    DeployState.QUEUED,
    DeployState.RUNNING,
)  # the states a runner lease is kept in  # a listing says "50000+" rather than count without end
Fence = int | None
"""The attempt a writer took the deploy with (its writes land only while it is the current
one), or None for writes that need no fence."""


def fenced(stmt: sa.Update, attempt: Fence) -> sa.Update:
    return stmt if attempt is None else stmt.where(table.c.attempt == attempt)


@dataclass(frozen=True)
class RunnerLease:
    """A replica's lease on the deploys it runs: its id, and how long a taking or a renewal
    lasts. While it lasts, no other replica takes the deploy."""

    runner: str
    seconds: float

    def until(self, at: datetime) -> datetime:
        return at + timedelta(seconds=self.seconds)


def lapsed(at: datetime) -> sa.ColumnElement[bool]:
    """No replica's lease on the deploy is live at ``at`` (none ever, handed back or run out)."""
    return sa.or_(table.c.runner_until.is_(None), table.c.runner_until <= at)


class Deployments:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, deployment: Deployment) -> Deployment:
        """Store a new deploy; one whose ``request`` is already stored is not stored again:
        the deploy that request recorded is returned instead."""
        stmt = table.insert().values(values_of(deployment, table)).returning(table.c.id)
        try:
            async with self.db.write() as conn:
                new_id = await conn.scalar(stmt)
        except sa.exc.IntegrityError:
            earlier = await self.by_request(deployment.request) if deployment.request else None
            if earlier is None:
                raise
            return earlier
        found = await self.get(int(new_id or 0))
        assert found is not None
        return found

    async def mark_replied(self, deploy_id: int) -> bool:
        """True once: the first caller answers the command that asked for the deploy."""
        stmt = table.update().where(table.c.id == deploy_id, sa.not_(table.c.replied))
        async with self.db.write() as conn:
            updated = (await conn.execute(stmt.values(replied=True).returning(table.c.id))).first()
        return updated is not None

    async def by_request(self, request: str) -> Deployment | None:
        """The deploy the Slack delivery ``request`` recorded (a replayed command finds it)."""
        found = await self.many(table.select().where(table.c.request == request).limit(1))
        return found[0] if found else None

    async def get(self, deploy_id: int) -> Deployment | None:
        found = await self.many(table.select().where(table.c.id == deploy_id))
        return found[0] if found else None

    async def update(
        self,
        deploy_id: int,
        *,
        only_if: Iterable[DeployState] | None = None,
        attempt: Fence = None,
        **changes: Any,
    ) -> Deployment | None:
        """Apply ``changes``; with ``only_if``, only from one of those states, with ``attempt``
        only while the deploy is still taken by that attempt (None otherwise: the transition
        already happened elsewhere, or another bot has taken the deploy since)."""
        stmt = table.update().where(table.c.id == deploy_id).values(checked(changes, table))
        stmt = fenced(stmt, attempt)
        if only_if is not None:
            stmt = stmt.where(table.c.state.in_([str(s) for s in only_if]))
        async with self.db.write() as conn:
            updated = (await conn.execute(stmt.returning(table.c.id))).first()
        return await self.get(deploy_id) if updated else None

    async def take(
        self,
        deploy_id: int,
        *,
        only_if: Iterable[DeployState],
        attempt: int,
        lease: RunnerLease | None = None,
        **changes: Any,
    ) -> Deployment | None:
        """A bot takes the deploy to run it (or to resume it): compare-and-set from one of
        ``only_if`` and the ``attempt`` it read, to the next attempt; None when another got it
        first. Later writes by earlier attempts are refused. With ``lease``, only while no
        other replica's lease on it is live, and the lease is the taker's from then on."""
        values = checked(changes, table) | {"attempt": table.c.attempt + 1}
        stmt = table.update().where(
            table.c.id == deploy_id,
            table.c.state.in_([str(s) for s in only_if]),
            table.c.attempt == attempt,
        )
        if lease is not None:
            at = now()
            stmt = stmt.where(sa.or_(lapsed(at), table.c.runner == lease.runner))
            values |= {"runner": lease.runner, "runner_until": lease.until(at)}
        async with self.db.write() as conn:
            updated = (await conn.execute(stmt.values(values).returning(table.c.id))).first()
        return await self.get(deploy_id) if updated else None

    async def finish(
        self,
        deploy_id: int,
        *,
        only_if: Iterable[DeployState],
        holder: str,
        attempt: Fence = None,
        **changes: Any,
    ) -> Deployment | None:
        """A final state and the release of the lock ``holder`` holds on the deploy's
        environment, in one transaction: compare-and-set from one of ``only_if``, and only while
        no ecspresso process group is recorded for the deploy (one that may still run keeps
        the lock held). None when the transition did not happen."""
        values = checked(changes, table) | {"step": None}
        stmt = fenced(table.update(), attempt).where(
            table.c.id == deploy_id,
            table.c.state.in_([str(s) for s in only_if]),
            table.c.ecspresso_pgid.is_(None),
        )
        stmt = stmt.values(values).returning(table.c.model, table.c.env)
        async with self.db.write() as conn:
            updated = (await conn.execute(stmt)).first()
            if updated is not None:
                await conn.execute(
                    locks.delete().where(
                        locks.c.model == updated.model,
                        locks.c.env == updated.env,
                        locks.c.holder == holder,
                    )
                )
        return await self.get(deploy_id) if updated else None

    async def enter(
        self,
        deploy_id: int,
        step: str,
        *,
        attempt: Fence = None,
        ecspresso_run: bool = False,
        **changes: Any,
    ) -> Deployment | None:
        """A running deploy enters ``step`` (counting an ecspresso deploy it is about to
        start); None when it is not running any more (or no longer taken by ``attempt``)."""
        values = checked(changes, table) | {"step": step}
        if ecspresso_run:
            values["ecspresso_runs"] = table.c.ecspresso_runs + 1
        stmt = table.update().where(
            table.c.id == deploy_id, table.c.state == str(DeployState.RUNNING)
        )
        stmt = fenced(stmt, attempt)
        async with self.db.write() as conn:
            updated = (await conn.execute(stmt.values(values).returning(table.c.id))).first()
        return await self.get(deploy_id) if updated else None

    async def record_process(self, deploy_id: int, pgid: int, fingerprint: str) -> None:
        """The process group of the ecspresso now running for the deploy (not fenced: a
        group that runs is recorded whoever started it, so that it is ended)."""
        await self.update(deploy_id, ecspresso_pgid=pgid, ecspresso_fingerprint=fingerprint)

    async def clear_process(self, deploy_id: int, *, attempt: Fence = None) -> None:
        """The deploy's ecspresso process group has ended (as seen by ``attempt``)."""
        await self.update(
            deploy_id, attempt=attempt, ecspresso_pgid=None, ecspresso_fingerprint=None
        )

    async def with_process(self) -> list[Deployment]:
        """Deploys (in any state) with an ecspresso process group recorded."""
        return await self.many(table.select().where(table.c.ecspresso_pgid.is_not(None)))

    async def renew_runs(self, lease: RunnerLease, ids: Collection[int]) -> set[int]:
        """Extend ``lease`` on the deploys ``ids`` its runner works on; the ids it still holds
        (the others finished, or another replica took them after the lease lapsed)."""
        if not ids:
            return set()
        stmt = table.update().where(
            table.c.id.in_(list(ids)),
            table.c.runner == lease.runner,
            table.c.state.in_([str(s) for s in LEASED]),
        )
        stmt = stmt.values(runner_until=lease.until(now())).returning(table.c.id)
        async with self.db.write() as conn:
            return set((await conn.scalars(stmt)).all())

    async def hand_back(self, runner: str | None, ids: Collection[int] | None = None) -> int:
        """Clear ``runner``'s leases on unfinished deploys (on ``ids``; everyone's when
        ``runner`` is None: a lone replica starting), so that the leader takes those deploys
        at once; how many (finished deploys keep the name of their last runner)."""
        stmt = table.update().where(
            table.c.runner_until.is_not(None), table.c.state.in_([str(s) for s in LEASED])
        )
        if runner is not None:
            stmt = stmt.where(table.c.runner == runner)
        if ids is not None:
            stmt = stmt.where(table.c.id.in_(list(ids)))
        async with self.db.write() as conn:
            result = await conn.execute(stmt.values(runner=None, runner_until=None))
        return int(result.rowcount or 0)

    async def unowned(self, *states: DeployState) -> list[Deployment]:
        """Deploys in ``states`` that no replica's lease covers now, oldest first."""
        stmt = table.select().where(table.c.state.in_([str(s) for s in states]), lapsed(now()))
        return await self.many(stmt.order_by(table.c.id))

    async def runner_of(self, deploy_id: int) -> tuple[str | None, datetime | None]:
        """Who holds the lease on the deploy and until when (None, None: nobody)."""
        stmt = sa.select(table.c.runner, table.c.runner_until).where(table.c.id == deploy_id)
        async with self.db.read() as conn:
            row = (await conn.execute(stmt)).first()
        return (None, None) if row is None else (row.runner, row.runner_until)

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

    async def history_page(self, model: str, env: str, number: int, size: int) -> Page[Deployment]:
        """Page ``number`` of the deploys to ``model``/``env``, newest first, and their count
        (counted on the (model, env, id) index, up to ``COUNT_CAP``)."""
        where = (table.c.model == model, table.c.env == env)
        inner = sa.select(sa.literal(1)).select_from(table).where(*where).limit(COUNT_CAP)
        count = sa.select(sa.func.count()).select_from(inner.subquery())
        stmt = table.select().where(*where).order_by(table.c.id.desc())
        stmt = stmt.limit(size).offset(offset_of(number, size))
        async with self.db.read() as conn:
            total = int(await conn.scalar(count) or 0)
        items = await self.many(stmt) if total else []
        return Page(items, total, max(1, number), size)

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
            query = votes.select().where(votes.c.deploy_id.in_(ids)).order_by(votes.c.at)
            cast = (await conn.execute(query)).all() if ids else []
        by_deploy: dict[int, list[sa.Row[Any]]] = {}
        for v in cast:
            by_deploy.setdefault(v.deploy_id, []).append(v)
        return [self.build(row, by_deploy.get(row.id, [])) for row in rows]

    def build(self, row: sa.Row[Any], cast: list[sa.Row[Any]]) -> Deployment:
        approvers = tuple(v.user for v in cast if v.approve)
        rejecters = tuple(v.user for v in cast if not v.approve)
        return from_row(Deployment, row, table, approvers=approvers, rejecters=rejecters)
