"""The store against real SQLite files and a real PostgreSQL server (see conftest)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot.domain.access import AuditEvent, Outcome
from bot.domain.cards import CardRef
from bot.domain.deploys import Freeze, Lock
from bot.errors import ConfigError
from bot.store import LATEST, MIGRATIONS, Store, StoreNotReady, StoreTimeout, schema
from bot.store.engine import build_engine, normalize_url
from bot.store.migrations import add_column
from tests.helpers import queued_run
from tests.pg import free_port

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def a_lock(holder: str = "U1", *, model: str = "fraud", env: str = "prod", **kw: object) -> Lock:
    return Lock(model=model, env=env, holder=holder, reason="hotfix", since=now(), **kw)  # type: ignore[arg-type]


def an_event(at: datetime, *, model: str | None = "fraud", **kw: object) -> AuditEvent:
    fields: dict[str, object] = {
        "actor": "U1",
        "action": "deploy",
        "target": "fraud/prod",
        "outcome": Outcome.OK,
        "correlation_id": "c-1",
        "at": at,
        "model": model,
    }
    return AuditEvent(**(fields | kw))  # type: ignore[arg-type]


# -- URLs and schema ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///var/x.db", "sqlite+loop"),
        ("sqlite+aiosqlite:///var/x.db", "sqlite+loop"),
        ("postgresql://u@127.0.0.1:5432/db", "postgresql+asyncpg"),
        ("postgres://u@127.0.0.1/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@127.0.0.1/db", "postgresql+asyncpg"),
    ],
)
def test_urls_are_normalised_to_async_drivers(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


@pytest.mark.parametrize("url", ["mysql://u:secret@h/db", "sqlite://", "not a url"])
def test_unsupported_urls_are_config_errors_without_secrets(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        Store.from_url(url)
    assert "secret" not in str(err.value)


def test_migration_versions_are_consecutive() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))


async def test_migrate_from_empty_then_rerun_is_a_noop(empty_store: Store) -> None:
    assert await empty_store.schema_version() == 0
    assert await empty_store.migrate() == (0, LATEST)
    assert await empty_store.schema_version() == LATEST
    assert await empty_store.migrate() == (LATEST, LATEST)


async def test_two_processes_migrating_at_once_both_succeed(store_url: str) -> None:
    first, second = Store.from_url(store_url), Store.from_url(store_url)
    try:
        results = await asyncio.gather(first.migrate(), second.migrate())
        # They take turns per version, so either may apply some of them; both end current.
        assert min(start for start, _ in results) == 0
        assert [end for _, end in results] == [LATEST, LATEST]
        await first.ensure_current()
    finally:
        await first.close()
        await second.close()


async def test_migrated_tables_match_the_schema_module(store: Store, store_url: str) -> None:
    engine = build_engine(normalize_url(store_url), timeout=10)

    def columns(conn: sa.Connection) -> dict[str, set[str]]:
        inspector = sa.inspect(conn)
        return {t: {c["name"] for c in inspector.get_columns(t)} for t in schema.metadata.tables}

    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(columns)
    finally:
        await engine.dispose()
    expected = {name: set(table.c.keys()) for name, table in schema.metadata.tables.items()}
    assert found == expected


async def test_later_migrations_can_add_columns(store: Store, store_url: str) -> None:
    engine = build_engine(normalize_url(store_url), timeout=10)
    try:
        async with engine.connect() as conn, conn.begin() as transaction:
            column = sa.Column("note", sa.Text, nullable=False, server_default="")
            await add_column(conn, "cards", column)
            names = await conn.run_sync(lambda c: sa.inspect(c).get_columns("cards"))
            assert "note" in {c["name"] for c in names}
            await transaction.rollback()
    finally:
        await engine.dispose()


async def test_ensure_current_refuses_an_unmigrated_database(empty_store: Store) -> None:
    with pytest.raises(StoreNotReady) as err:
        await empty_store.ensure_current()
    assert str(err.value) == (
        f"store schema is at version 0, this bot needs {LATEST}: run `mlops-bot migrate`"
    )
    await empty_store.migrate()
    await empty_store.ensure_current()


async def test_ping(store: Store) -> None:
    assert await store.ping() is True


@pytest.mark.parametrize(
    "url",
    [f"postgresql://postgres@127.0.0.1:{free_port()}/x", "sqlite:////proc/no/such/dir/bot.db"],
    ids=["postgres", "sqlite"],
)
async def test_ping_is_false_when_the_database_is_unreachable(url: str) -> None:
    store = Store.from_url(url, timeout=1)
    try:
        assert await store.ping() is False
    finally:
        await store.close()


# -- deliveries --------------------------------------------------------------------------------


async def test_a_delivery_is_claimed_once(store: Store) -> None:
    assert await store.claim_delivery("Ev01") is True
    assert await store.claim_delivery("Ev01") is False
    assert await store.claim_delivery("Ev02") is True


async def test_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    claims = await asyncio.gather(*(store.claim_delivery("Ev-race") for _ in range(20)))
    assert claims.count(True) == 1


async def test_prune_forgets_old_deliveries(store: Store) -> None:
    await store.claim_delivery("old")
    assert await store.prune_deliveries(now() - timedelta(hours=1)) == 0
    assert await store.prune_deliveries(now() + timedelta(seconds=1)) == 1
    assert await store.claim_delivery("old") is True


# -- audit -------------------------------------------------------------------------------------


async def test_audit_round_trip_and_filters(store: Store) -> None:
    params = {"run": 42, "weights": [90, 10], "nested": {"image": "sha256:abc"}}
    first = an_event(T0, parameters=params, detail="went fine")
    ids = [
        await store.record_audit(first),
        await store.record_audit(an_event(T0 + timedelta(minutes=1), model="churn")),
        await store.record_audit(an_event(T0 + timedelta(minutes=2), outcome=Outcome.DENIED)),
        await store.record_audit(an_event(T0 + timedelta(minutes=3), model=None)),
    ]
    assert ids == sorted(set(ids))

    everything = await store.audit_events()
    assert [e.id for e in everything] == ids
    assert everything[0] == AuditEvent(**{**first.__dict__, "id": ids[0]})
    assert everything[0].at.tzinfo is not None and everything[0].at.utcoffset() == timedelta(0)

    fraud = await store.audit_events(model="fraud")
    assert [e.id for e in fraud] == [ids[0], ids[2]]
    assert fraud[1].outcome is Outcome.DENIED
    recent = await store.audit_events(since=T0 + timedelta(minutes=1))
    assert [e.id for e in recent] == ids[1:]
    assert [e.id for e in await store.audit_events(limit=2)] == ids[:2]


async def test_times_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    berlin = datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    await store.record_audit(an_event(berlin))
    (event,) = await store.audit_events()
    assert event.at == T0 and event.at.tzinfo == UTC


async def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        await store.record_audit(an_event(datetime(2026, 3, 1, 12, 0)))


# -- locks -------------------------------------------------------------------------------------


async def test_lock_acquire_conflict_and_release(store: Store) -> None:
    mine = a_lock("U1", expires_at=now() + timedelta(hours=1))
    assert await store.acquire_lock(mine) == (True, mine)
    assert await store.acquire_lock(a_lock("U2")) == (False, mine)
    assert await store.get_lock("fraud", "prod") == mine
    assert await store.get_lock("fraud", "stg") is None

    assert await store.release_lock("fraud", "prod", holder="U2") is None
    assert await store.get_lock("fraud", "prod") == mine
    assert await store.release_lock("fraud", "prod", holder="U1") == mine
    assert await store.get_lock("fraud", "prod") is None
    assert await store.release_lock("fraud", "prod") is None


async def test_release_without_holder_releases_anyones_lock(store: Store) -> None:
    theirs = a_lock("U2")
    await store.acquire_lock(theirs)
    assert await store.release_lock("fraud", "prod") == theirs


async def test_an_expired_lock_counts_as_absent_and_is_replaced(store: Store) -> None:
    stale = a_lock("U1", expires_at=now() - timedelta(seconds=1))
    await store.acquire_lock(stale)
    assert await store.get_lock("fraud", "prod") is None
    assert await store.list_locks() == []
    fresh = a_lock("U2")
    assert await store.acquire_lock(fresh) == (True, fresh)
    assert await store.list_locks() == [fresh]


async def test_concurrent_acquires_have_one_winner(store: Store) -> None:
    attempts = [a_lock(f"U{i}") for i in range(10)]
    results = await asyncio.gather(*(store.acquire_lock(lock) for lock in attempts))
    winners = [lock for taken, lock in results if taken]
    assert len(winners) == 1
    assert {lock for _, lock in results} == {winners[0]}


async def test_list_locks_by_model(store: Store) -> None:
    locks = [a_lock(model="churn"), a_lock(model="fraud"), a_lock(model="fraud", env="stg")]
    for lock in locks:
        await store.acquire_lock(lock)
    assert await store.list_locks() == locks
    assert await store.list_locks("fraud") == locks[1:]


# -- freeze and cards --------------------------------------------------------------------------


async def test_freeze_set_conflict_and_clear(store: Store) -> None:
    assert await store.get_freeze() is None
    first = Freeze(holder="U1", reason="release week", since=T0)
    assert await store.set_freeze(first) == (True, first)
    assert await store.set_freeze(Freeze("U2", "other", now())) == (False, first)
    assert await store.get_freeze() == first
    assert await store.clear_freeze() == first
    assert await store.clear_freeze() is None
    assert await store.get_freeze() is None


async def test_concurrent_freezes_have_one_winner(store: Store) -> None:
    attempts = [Freeze(f"U{i}", "why", now()) for i in range(10)]
    results = await asyncio.gather(*(store.set_freeze(f) for f in attempts))
    assert [taken for taken, _ in results].count(True) == 1
    assert len({freeze for _, freeze in results}) == 1


async def test_cards_are_upserted_by_key(store: Store) -> None:
    assert await store.get_card("run:42") is None
    await store.save_card(CardRef("run:42", "C1", "1700000000.000100"))
    await store.save_card(CardRef("lock:fraud:prod", "C2", "1700000000.000200"))
    await store.save_card(CardRef("run:42", "C3", "1700000000.000300"))
    assert await store.get_card("run:42") == CardRef("run:42", "C3", "1700000000.000300")
    assert await store.get_card("lock:fraud:prod") == CardRef(
        "lock:fraud:prod", "C2", "1700000000.000200"
    )


# -- timeouts ----------------------------------------------------------------------------------


@asynccontextmanager
async def writes_blocked(url: str) -> AsyncIterator[None]:
    """Hold the database's write lock (SQLite) or the locks table (PostgreSQL) from outside."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        outsider = sqlite3.connect(str(parsed.database), isolation_level=None)
        outsider.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            outsider.execute("ROLLBACK")
            outsider.close()
        return
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE locks IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


async def test_a_blocked_database_raises_store_timeout(store: Store, store_url: str) -> None:
    impatient = Store.from_url(store_url, timeout=0.5)
    try:
        async with writes_blocked(store_url):
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(StoreTimeout):
                await impatient.acquire_lock(a_lock())
            assert loop.time() - started < 2
        assert (await impatient.acquire_lock(a_lock()))[0] is True
    finally:
        await impatient.close()


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = build_engine(normalize_url(f"sqlite:///{tmp_path}/a/b/bot.db"), timeout=3)
    try:
        async with engine.connect() as conn:
            pragmas = [
                (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            ]
    finally:
        await engine.dispose()
    # busy_timeout 0: on the loop a locked file fails at once and the statement waits for the
    # lock in a thread instead (see the tests of waiting for a lock held elsewhere)
    assert pragmas == ["wal", 1, 0]
    assert (tmp_path / "a" / "b" / "bot.db").exists()


async def test_a_run_not_yet_judged_has_null_metrics_and_verdict_in_sql(store: Store) -> None:
    """``verdict IS NULL`` finds the runs still to be judged (it missed them when None was
    stored as the JSON text ``null``)."""
    run = await store.runs.create(queued_run())
    unjudged = sa.text("SELECT id FROM runs WHERE verdict IS NULL AND metrics IS NULL")
    async with store.db.read() as conn:
        assert (await conn.execute(unjudged)).scalars().all() == [run.id]
    judged = await store.runs.update(run.id, metrics={"accuracy": 0.9}, verdict={"passed": True})
    assert judged is not None and judged.verdict == {"passed": True}
    async with store.db.read() as conn:
        assert (await conn.execute(unjudged)).scalars().all() == []
    cleared = await store.runs.update(run.id, verdict=None)
    assert cleared is not None and cleared.verdict is None and cleared.metrics == {"accuracy": 0.9}
