"""Persistence on SQLAlchemy Core (async): an SQLite file by default, PostgreSQL by URL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.domain.access import AuditEvent
from bot.domain.cards import CardRef
from bot.domain.deploys import Freeze, Lock
from bot.errors import Conflict
from bot.store import faults, migrations, rows, schema
from bot.store.ab import AbExperimentsStore
from bot.store.cards import CardStates
from bot.store.db import Database
from bot.store.deployments import Deployments
from bot.store.engine import build_engine, normalize_url
from bot.store.errors import StoreNotReady, StoreTimeout
from bot.store.inbox import Inbox
from bot.store.leases import Leases, check_fence
from bot.store.runs import Runs

PING_TIMEOUT = 2.0
MIGRATION_TIMEOUT = 120.0
MIGRATION_BUSY_RETRIES = 5
# Claims that lose to a row that then vanishes (released, expired) are retried this many times.
_CLAIM_ATTEMPTS = 5

Insert = postgresql.Insert | sqlite.Insert


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Every query the bot runs; each one bounded by ``timeout`` seconds."""

    def __init__(self, engine: AsyncEngine, *, timeout: float = 10.0) -> None:
        self.db = Database(engine, timeout=timeout)
        self.db.fence = check_fence
        self.leases = Leases(self.db)
        self.runs = Runs(self.db)
        self.deployments = Deployments(self.db)
        self.inbox = Inbox(self.db)
        self.interactions = Inbox(self.db, table=schema.interactions)
        self.ab = AbExperimentsStore(self.db)
        self.cards = CardStates(self.db)
        self._engine = engine
        self._timeout = timeout
        self._read = self.db.read
        self._write = self.db.write
        self._insert = self.db.insert
        # built once: a statement built per call costs more than the insert itself
        audit = schema.audit_events
        self._audit_insert = audit.insert().returning(audit.c.id)

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 10.0) -> Store:
        """Build the engine for ``url`` (sqlite or postgresql, any driver); connects lazily."""
        return cls(build_engine(normalize_url(url), timeout=timeout), timeout=timeout)

    async def close(self) -> None:
        await self.inbox.close()
        await self.interactions.close()
        await self._engine.dispose()

    # -- schema -----------------------------------------------------------------------------

    async def migrate(self) -> tuple[int, int]:
        """Apply pending migrations, one transaction each; concurrent callers take turns."""
        start: int | None = None
        busy = 0
        while True:
            try:
                async with self._write(max(self._timeout, MIGRATION_TIMEOUT)) as conn:
                    await migrations.serialise_migrations(conn)
                    current = await migrations.current_version(conn)
                    start = current if start is None else start
                    pending = migrations.next_migration(current)
                    if pending is None:
                        return start, current
                    await migrations.apply_migration(conn, pending)
            except StoreTimeout:
                # A brand-new SQLite file can answer "locked" at once while another process
                # switches it to WAL; that settles in moments.
                busy += 1
                if busy > MIGRATION_BUSY_RETRIES:
                    raise
                await asyncio.sleep(0.1 * busy)

    async def schema_version(self) -> int:
        async with self._read() as conn:
            return await migrations.current_version(conn)

    async def ensure_current(self) -> None:
        version = await self.schema_version()
        latest = migrations.LATEST
        if version < latest:
            raise StoreNotReady(
                f"store schema is at version {version}, this bot needs {latest}: "
                "run `mlops-bot migrate`"
            )
        if version > latest:
            raise StoreNotReady(
                f"store schema is at version {version}, newer than this bot's {latest}: "
                "upgrade the bot"
            )

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(min(self._timeout, PING_TIMEOUT)):
                async with self._engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    async def probe_write(self) -> str | None:
        """None when the store takes a write now; else what is wrong (full, read-only, ...)."""
        table = schema.deliveries
        stmt = self._insert(table).values(key="readyz-probe", claimed_at=_now())
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.key], set_={"claimed_at": stmt.excluded.claimed_at}
        )
        try:
            async with asyncio.timeout(min(self._timeout, PING_TIMEOUT)):
                async with self._write() as conn:
                    await conn.execute(stmt)
        except Exception as err:
            return faults.reason(err)[0]
        return None

    # -- deliveries -------------------------------------------------------------------------

    async def claim_delivery(self, key: str) -> bool:
        """True for the first claim of a Slack/GitLab delivery key, False for any repeat."""
        table = schema.deliveries
        stmt = self._insert(table).values(key=key, claimed_at=_now())
        stmt = stmt.on_conflict_do_nothing(index_elements=[table.c.key])
        async with self._write() as conn:
            claimed = await conn.scalar(stmt.returning(table.c.key))
        return claimed is not None

    async def prune_deliveries(self, older_than: datetime) -> int:
        table = schema.deliveries
        async with self._write() as conn:
            result = await conn.execute(table.delete().where(table.c.claimed_at < older_than))
        return result.rowcount

    # -- audit ------------------------------------------------------------------------------

    async def record_audit(self, event: AuditEvent, *, processed: int | None = None) -> int:
        """The audit line; with ``processed``, the recorded interaction it closes is marked
        processed in the same transaction (right after its reply: a replay answers no more)."""
        values = rows.audit_values(event)
        async with self._write() as conn:
            found = int((await conn.execute(self._audit_insert, values)).scalar_one())
            if processed is not None:
                await self.interactions.finish_in(conn, [processed])
            return found

    async def audit_events(
        self, *, model: str | None = None, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditEvent]:
        """The first ``limit`` events at or after ``since``, oldest first."""
        table = schema.audit_events
        query = sa.select(table).order_by(table.c.at, table.c.id).limit(limit)
        if model is not None:
            query = query.where(table.c.model == model)
        if since is not None:
            query = query.where(table.c.at >= since)
        async with self._read() as conn:
            return [rows.to_audit(row) for row in await conn.execute(query)]

    # -- locks ------------------------------------------------------------------------------

    async def acquire_lock(self, lock: Lock) -> tuple[bool, Lock]:
        """Take ``lock`` unless someone holds a live one; then return theirs."""
        for _ in range(_CLAIM_ATTEMPTS):
            async with self._write() as conn:
                if await self._insert_lock(conn, lock):
                    return True, lock
                holder = await self._live_lock(conn, lock.model, lock.env)
                if holder is not None:
                    return False, holder
        raise Conflict(f"the lock on {lock.model} {lock.env} keeps changing hands: try again")

    async def _insert_lock(self, conn: AsyncConnection, lock: Lock) -> bool:
        table = schema.locks
        same = (table.c.model == lock.model) & (table.c.env == lock.env)
        await conn.execute(table.delete().where(same, sa.not_(rows.live_locks(_now()))))
        stmt = self._insert(table).values(rows.lock_values(lock)).on_conflict_do_nothing()
        return await conn.scalar(stmt.returning(table.c.model)) is not None

    async def _live_lock(self, conn: AsyncConnection, model: str, env: str) -> Lock | None:
        table = schema.locks
        query = sa.select(table).where(
            table.c.model == model, table.c.env == env, rows.live_locks(_now())
        )
        row = (await conn.execute(query)).first()
        return None if row is None else rows.to_lock(row)

    async def get_lock(self, model: str, env: str) -> Lock | None:
        async with self._read() as conn:
            return await self._live_lock(conn, model, env)

    async def release_lock(self, model: str, env: str, *, holder: str | None = None) -> Lock | None:
        """Remove the lock (only if ``holder`` holds it, when given); return it if it was live."""
        table = schema.locks
        stmt = table.delete().where(table.c.model == model, table.c.env == env)
        if holder is not None:
            stmt = stmt.where(table.c.holder == holder)
        async with self._write() as conn:
            row = (await conn.execute(stmt.returning(*table.c))).first()
        released = None if row is None else rows.to_lock(row)
        return released if released is not None and rows.is_live(released, _now()) else None

    async def list_locks(self, model: str | None = None) -> list[Lock]:
        table = schema.locks
        query = sa.select(table).where(rows.live_locks(_now())).order_by(table.c.model, table.c.env)
        if model is not None:
            query = query.where(table.c.model == model)
        async with self._read() as conn:
            return [rows.to_lock(row) for row in await conn.execute(query)]

    # -- freeze -----------------------------------------------------------------------------

    async def set_freeze(self, freeze: Freeze) -> tuple[bool, Freeze]:
        """Freeze all deploys unless a freeze is already on; then return that one."""
        table = schema.freeze
        stmt = self._insert(table).values(rows.freeze_values(freeze)).on_conflict_do_nothing()
        for _ in range(_CLAIM_ATTEMPTS):
            async with self._write() as conn:
                if await conn.scalar(stmt.returning(table.c.id)) is not None:
                    return True, freeze
                row = (await conn.execute(sa.select(table))).first()
                if row is not None:
                    return False, rows.to_freeze(row)
        raise Conflict("the deploy freeze keeps changing: try again")

    async def get_freeze(self) -> Freeze | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(schema.freeze))).first()
        return None if row is None else rows.to_freeze(row)

    async def clear_freeze(self) -> Freeze | None:
        table = schema.freeze
        async with self._write() as conn:
            row = (await conn.execute(table.delete().returning(*table.c))).first()
        return None if row is None else rows.to_freeze(row)

    # -- cards ------------------------------------------------------------------------------

    async def save_card(self, ref: CardRef) -> None:
        table = schema.cards
        values = {"channel": ref.channel, "ts": ref.ts, "updated_at": _now()}
        stmt = self._insert(table).values(key=ref.key, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[table.c.key], set_=values)
        async with self._write() as conn:
            await conn.execute(stmt)

    async def get_card(self, key: str) -> CardRef | None:
        table = schema.cards
        async with self._read() as conn:
            row = (await conn.execute(sa.select(table).where(table.c.key == key))).first()
        return None if row is None else rows.to_card(row)

    async def card_at(self, channel: str, ts: str) -> CardRef | None:
        """The card shown by the message at ``channel``/``ts`` (for reactions on it)."""
        table = schema.cards
        stmt = sa.select(table).where(table.c.channel == channel, table.c.ts == ts)
        async with self._read() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else rows.to_card(row)
