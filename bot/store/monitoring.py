"""Model monitoring in the store: run reference profiles, the last check per model
environment, the history of checks (pruned to ``HISTORY``), when each daily digest was sent,
and incidents (compare-and-set; one unresolved incident per kind)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.monitoring.incidents import (
    ACTIVE,
    CheckResult,
    Incident,
    IncidentState,
    open_key,
)
from bot.store.db import Database
from bot.store.rowmap import from_row
from bot.store.schema import monitor_checks as checks
from bot.store.schema import monitor_digests as digests
from bot.store.schema import monitor_history as history
from bot.store.schema import monitor_incidents as incidents
from bot.store.schema import run_references as references

HISTORY = timedelta(days=14)  # checks older than this are dropped when a new one is saved


class StoredReference:
    """A run's reference.json as parsed JSON, or why it could not be kept."""

    def __init__(self, source: str, profile: dict[str, Any] | None, error: str | None) -> None:
        self.source = source
        self.profile = profile
        self.error = error


class MonitoringStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- references ----------------------------------------------------------------------------

    async def keep_reference(
        self,
        run_id: int,
        source: str,
        profile: dict[str, Any] | None,
        error: str | None,
        at: datetime,
    ) -> None:
        values = {"source": source, "profile": profile, "error": error, "stored_at": at}
        statement = self.db.insert(references).values(run_id=run_id, **values)
        async with self.db.write() as conn:
            await conn.execute(
                statement.on_conflict_do_update(index_elements=["run_id"], set_=values)
            )

    async def reference(self, run_id: int) -> StoredReference | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(references.select().where(references.c.run_id == run_id))
            ).first()
        return StoredReference(row.source, row.profile, row.error) if row else None

    # -- the last check ------------------------------------------------------------------------

    async def save_check(self, model: str, env: str, result: CheckResult) -> None:
        """The environment's last check, and one more row of its history (older rows than
        ``HISTORY`` dropped)."""
        values = {
            "checked_at": result.checked_at,
            "deploy_id": result.deploy_id,
            "run_id": result.run_id,
            "result": result.to_json(),
        }
        statement = self.db.insert(checks).values(model=model, env=env, **values)
        where = (history.c.model == model) & (history.c.env == env)
        old = where & (history.c.checked_at < result.checked_at - HISTORY)
        async with self.db.write() as conn:
            await conn.execute(
                statement.on_conflict_do_update(index_elements=["model", "env"], set_=values)
            )
            await conn.execute(history.insert().values(model=model, env=env, **values))
            await conn.execute(history.delete().where(old))

    async def checks_since(self, model: str, env: str, since: datetime) -> list[CheckResult]:
        """The environment's checks from ``since`` on, oldest first."""
        where = (
            (history.c.model == model) & (history.c.env == env) & (history.c.checked_at >= since)
        )
        query = history.select().where(where).order_by(history.c.checked_at, history.c.id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [CheckResult.from_json(r.result, r.checked_at, r.deploy_id, r.run_id) for r in rows]

    # -- the daily digest ----------------------------------------------------------------------

    async def digest_day(self, model: str, env: str) -> str | None:
        """The UTC day (YYYY-MM-DD) of the environment's last digest sent, if any."""
        where = (digests.c.model == model) & (digests.c.env == env)
        async with self.db.read() as conn:
            return await conn.scalar(sa.select(digests.c.day).where(where))

    async def digest_sent(
        self, model: str, env: str, day: str, at: datetime, file_id: str | None
    ) -> None:
        values = {"day": day, "sent_at": at, "file_id": file_id}
        statement = self.db.insert(digests).values(model=model, env=env, **values)
        async with self.db.write() as conn:
            await conn.execute(
                statement.on_conflict_do_update(index_elements=["model", "env"], set_=values)
            )

    async def last_check(self, model: str, env: str) -> CheckResult | None:
        where = (checks.c.model == model) & (checks.c.env == env)
        async with self.db.read() as conn:
            row = (await conn.execute(checks.select().where(where))).first()
        if row is None:
            return None
        return CheckResult.from_json(row.result, row.checked_at, row.deploy_id, row.run_id)

    # -- incidents -----------------------------------------------------------------------------

    async def breach(
        self, model: str, env: str, kind: str, text: str, deploy_id: int | None, at: datetime
    ) -> tuple[Incident, bool]:
        """The unresolved incident of this kind, updated with ``text``; or a new one (True).
        Two writers at once: the unique ``open_key`` refuses the second insert, which then
        updates the first's incident."""
        try:
            return await self._breach(model, env, kind, text, deploy_id, at)
        except sa.exc.IntegrityError:
            return await self._breach(model, env, kind, text, deploy_id, at)

    async def _breach(
        self, model: str, env: str, kind: str, text: str, deploy_id: int | None, at: datetime
    ) -> tuple[Incident, bool]:
        key = open_key(model, env, kind)
        async with self.db.write() as conn:
            row = (
                await conn.execute(incidents.select().where(incidents.c.open_key == key))
            ).first()
            if row is not None:
                await conn.execute(
                    incidents.update()
                    .where(incidents.c.id == row.id)
                    .values(latest=text, updated_at=at, checks=incidents.c.checks + 1)
                )
                incident_id, created = int(row.id), False
            else:
                incident_id = await self._insert(conn, model, env, kind, text, deploy_id, at)
                created = True
        found = await self.incident(incident_id)
        assert found is not None
        return found, created

    async def _insert(
        self, conn: AsyncConnection, model: str, env: str, kind: str, text: str,
        deploy_id: int | None, at: datetime,
    ) -> int:  # fmt: skip
        values = {
            "model": model, "env": env, "kind": kind, "open_key": open_key(model, env, kind),
            "state": IncidentState.OPEN.value, "opened_at": at, "updated_at": at,
            "deploy_id": deploy_id, "first": text, "latest": text, "checks": 1,
        }  # fmt: skip
        new_id = await conn.scalar(incidents.insert().values(values).returning(incidents.c.id))
        return int(new_id or 0)

    async def resolve(self, incident_id: int, at: datetime) -> Incident | None:
        """Resolve it once; None when it was already resolved."""
        return await self._change(
            incident_id, state=IncidentState.RESOLVED.value, open_key=None, resolved_at=at,
            updated_at=at,
        )  # fmt: skip

    async def acknowledge(self, incident_id: int, user: str, at: datetime) -> Incident | None:
        return await self._change(
            incident_id, state=IncidentState.ACKNOWLEDGED.value, acknowledged_by=user,
            updated_at=at,
        )  # fmt: skip

    async def snooze(self, incident_id: int, until: datetime, at: datetime) -> Incident | None:
        return await self._change(incident_id, snoozed_until=until, updated_at=at)

    async def _change(self, incident_id: int, **values: Any) -> Incident | None:
        active = [s.value for s in ACTIVE]
        where = (incidents.c.id == incident_id) & incidents.c.state.in_(active)
        async with self.db.write() as conn:
            done = await conn.execute(incidents.update().where(where).values(**values))
        return await self.incident(incident_id) if done.rowcount == 1 else None

    async def incident(self, incident_id: int) -> Incident | None:
        found = await self._many(incidents.select().where(incidents.c.id == incident_id))
        return found[0] if found else None

    async def active(self, model: str, env: str) -> list[Incident]:
        where = (
            (incidents.c.model == model)
            & (incidents.c.env == env)
            & incidents.c.open_key.is_not(None)
        )
        return await self._many(incidents.select().where(where).order_by(incidents.c.id))

    async def _many(self, query: sa.Select[Any]) -> list[Incident]:
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [from_row(Incident, row, incidents) for row in rows]
