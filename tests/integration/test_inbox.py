"""The webhook inbox and the CI card states, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.store import Store
from bot.store.ci_states import CiStates
from bot.store.db import now
from bot.store.errors import StoreTimeout
from bot.store.inbox import Delivery
from tests.helpers import (
    Ticker,
    migrated_sqlite_store,
    on_commits_in_a_thread,
    on_new_connections,
    sqlite_lock_held,
)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    async with migrated_sqlite_store(tmp_path) as store:
        yield store


def keys_seen_elsewhere(path: Path) -> set[str]:
    """The interactions' keys as another connection sees them (another process would too)."""
    with contextlib.closing(sqlite3.connect(path)) as other:
        return {key for (key,) in other.execute("SELECT key FROM interactions")}


def delivery(key: str, *, kind: str = "pipeline", ignored: bool = False) -> Delivery:
    return Delivery(key, kind, "ml/fraud", '{"object_kind": "pipeline"}', ignored=ignored)


async def test_a_key_is_stored_once(store: Store) -> None:
    assert await store.inbox.put(delivery("k1")) is True
    assert await store.inbox.put(delivery("k1")) is False
    assert await store.inbox.counts() == {"pending": 1}


async def test_concurrent_puts_share_transactions_and_keep_one_row_per_key(store: Store) -> None:
    keys = [f"k{i % 150}" for i in range(200)]  # 50 repeats, some in the same transaction
    results = await asyncio.gather(*(store.inbox.put(delivery(k)) for k in keys))
    assert sum(results) == 150
    assert await store.inbox.counts() == {"pending": 150}


async def test_put_many_reports_repeats_within_one_call(store: Store) -> None:
    stored = await store.inbox.put_many([delivery("a"), delivery("b"), delivery("a")])
    assert stored == [True, True, False]


async def test_batches_come_oldest_first_and_skip_what_is_in_hand(store: Store) -> None:
    for key in ("a", "b", "c", "d"):
        await store.inbox.put(delivery(key))
    first = await store.inbox.next_batch(2)
    assert [i.key for i in first] == ["a", "b"]
    rest = await store.inbox.next_batch(10, skip={i.id for i in first})
    assert [i.key for i in rest] == ["c", "d"]
    assert rest[0].body == '{"object_kind": "pipeline"}' and rest[0].project == "ml/fraud"


async def test_ignored_deliveries_are_never_handed_out(store: Store) -> None:
    await store.inbox.put(delivery("push", kind="push", ignored=True))
    assert await store.inbox.next_batch(10) == []
    assert await store.inbox.counts() == {"ignored": 1}
    assert await store.inbox.put(delivery("push", kind="push", ignored=True)) is False


async def test_processed_and_ignored_rows_leave_the_queue(store: Store) -> None:
    for key in ("a", "b", "c"):
        await store.inbox.put(delivery(key))
    a, b, _ = await store.inbox.next_batch(10)
    await store.inbox.mark_processed([a.id])
    await store.inbox.mark_ignored([b.id], "not understood")
    assert [i.key for i in await store.inbox.next_batch(10)] == ["c"]
    assert await store.inbox.counts() == {"pending": 1, "processed": 1, "ignored": 1}


async def test_a_failure_waits_for_its_retry_then_gives_up(store: Store) -> None:
    await store.inbox.put(delivery("a"))
    (item,) = await store.inbox.next_batch(10)
    later = now() + timedelta(minutes=5)
    await store.inbox.mark_failed([item.id], "Slack said ratelimited", retry_at=later)
    assert await store.inbox.next_batch(10) == []
    due = await store.inbox.next_due()
    assert due is not None and abs((due - later).total_seconds()) < 1
    await store.inbox.mark_failed([item.id], "again", retry_at=now() - timedelta(seconds=1))
    (again,) = await store.inbox.next_batch(10)
    assert again.attempts == 2
    await store.inbox.mark_failed([item.id], "for good", retry_at=None)
    assert await store.inbox.counts() == {"failed": 1}
    assert await store.inbox.next_due() is None


async def test_prune_removes_finished_rows_after_the_retention_only(store: Store) -> None:
    for key in ("old", "pending"):
        await store.inbox.put(delivery(key))
    old, _ = await store.inbox.next_batch(10)
    await store.inbox.mark_processed([old.id])
    assert await store.inbox.prune(now() - timedelta(hours=1)) == 0
    assert await store.inbox.prune(now() + timedelta(seconds=1)) == 1
    assert await store.inbox.counts() == {"pending": 1}
    assert await store.inbox.put(delivery("old")) is True  # forgotten after the retention


async def test_card_states_round_trip_and_prune(store: Store) -> None:
    states = CiStates(store.db)
    await states.put_many({"pipeline:ml/fraud:1": {"kind": "pipeline", "status": "running"}})
    await states.put_many({"pipeline:ml/fraud:1": {"kind": "pipeline", "status": "success"}})
    found = await states.get_many(["pipeline:ml/fraud:1", "pipeline:ml/fraud:2"])
    assert found == {"pipeline:ml/fraud:1": {"kind": "pipeline", "status": "success"}}
    assert await states.prune(now() + timedelta(seconds=1)) == 1
    assert await states.get_many(["pipeline:ml/fraud:1"]) == {}


async def test_a_row_the_database_refuses_fails_alone(store: Store) -> None:
    # PostgreSQL refuses a key longer than its column; SQLite takes it. Either way, the other
    # deliveries that shared its transaction are stored.
    too_long = Delivery("x" * 300, "pipeline", "ml/fraud", "{}")
    results = await asyncio.gather(
        store.inbox.put(delivery("good-1")),
        store.inbox.put(too_long),
        store.inbox.put(delivery("good-2")),
        return_exceptions=True,
    )
    assert results[0] is True and results[2] is True
    postgres = store.db.engine.dialect.name == "postgresql"
    assert isinstance(results[1], Exception) if postgres else results[1] is True


async def test_on_sqlite_a_put_is_in_the_file_when_it_returns(
    sqlite_store: Store, tmp_path: Path
) -> None:
    keys = [f"on-disk-{i}" for i in range(30)]
    assert all(await asyncio.gather(*(sqlite_store.interactions.put(delivery(k)) for k in keys)))
    assert keys_seen_elsewhere(tmp_path / "bot.db") == set(keys)


async def test_on_sqlite_puts_wait_for_a_writer_elsewhere_without_holding_up_the_loop(
    tmp_path: Path,
) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path}/bot.db")
    try:
        await store.migrate()
        # e.g. `mlops-bot inbox retry` in the middle of a write
        async with Ticker() as ticker:
            with sqlite_lock_held(tmp_path / "bot.db") as cli:
                puts = asyncio.gather(
                    *(store.interactions.put(delivery(f"w-{i}")) for i in range(5))
                )
                await asyncio.sleep(0.3)
                assert not puts.done()  # nothing is acked before it is written
                assert ticker.ticks >= 10  # the loop went on while the puts waited
                cli.execute("COMMIT")
            assert await puts == [True] * 5
        assert await store.interactions.counts() == {"pending": 5}
        # and the next puts take the short way again
        assert await store.interactions.put(delivery("after")) is True
        assert await store.interactions.put(delivery("after")) is False
    finally:
        await store.close()


async def test_on_sqlite_the_prepared_insert_stores_what_sqlalchemy_would(tmp_path: Path) -> None:
    """The inbox's own insert (SQLite) and SQLAlchemy's execution of the same statement leave
    the same values, of the same SQLite types, in every column."""
    store = Store.from_url(f"sqlite:///{tmp_path}/bot.db")
    try:
        await store.migrate()
        inbox = store.interactions
        first_refused = Delivery("hot", "command", None, '{"a": 1}')
        assert await inbox.put(first_refused) is True
        assert await inbox.put(delivery("hot-ignored", ignored=True)) is True
        rows = [{**r, "key": f"sa-{r['key']}"} for r in inbox._rows([first_refused])]
        rows += [{**r, "key": "sa-ignored"} for r in inbox._rows([delivery("x", ignored=True)])]
        async with store.db.write() as conn:
            await conn.execute(inbox._put_stmt, rows)
        columns = [c.name for c in inbox.table.columns if c.name not in ("id", "key")]
        shapes = ", ".join(f"typeof({c}), length({c})" for c in columns)
        query = f"SELECT key, {shapes} FROM interactions"  # noqa: S608 -- our column names
        with contextlib.closing(sqlite3.connect(tmp_path / "bot.db")) as other:
            found = {key: row for key, *row in other.execute(query)}
        assert found["hot"] == found["sa-hot"]
        assert found["hot-ignored"] == found["sa-ignored"]
        # and SQLAlchemy reads them back as it wrote them
        t = inbox.table
        async with store.db.read() as conn:
            read = dict((await conn.execute(sa.select(t.c.key, t.c.received_at))).all())
        assert read["hot"].tzinfo is not None
        assert abs((read["hot"] - read["sa-hot"]).total_seconds()) < 5
    finally:
        await store.close()


@pytest.fixture
async def hasty_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A SQLite store whose statements wait at most 0.5 s."""
    async with migrated_sqlite_store(tmp_path, timeout=0.5) as store:
        yield store


async def test_on_sqlite_a_put_that_timed_out_leaves_the_next_one_working(
    hasty_store: Store, tmp_path: Path
) -> None:
    with sqlite_lock_held(tmp_path / "bot.db"), pytest.raises(StoreTimeout):
        await hasty_store.interactions.put(delivery("while-locked"))
    assert await hasty_store.interactions.put(delivery("after")) is True
    assert [i.key for i in await hasty_store.interactions.next_batch(10)] == ["after"]


async def test_on_sqlite_a_put_whose_commit_lands_after_its_timeout_is_answered_stored(
    hasty_store: Store,
) -> None:
    """The wait gave up (0.5 s) while the commit's sync went on (1 s) and landed: the row is
    stored, so the put says so (not "timed out", which would tell the user nothing started)."""
    on_commits_in_a_thread(hasty_store, lambda: time.sleep(1.0))
    assert await hasty_store.interactions.put(delivery("late")) is True
    assert [i.key for i in await hasty_store.interactions.next_batch(10)] == ["late"]


async def test_put_many_hands_its_answer_to_committed_once_the_rows_are_committed(
    store: Store,
) -> None:
    answers: list[list[bool]] = []
    stored = await store.inbox.put_many(
        [delivery("c1"), delivery("c2"), delivery("c1")], committed=answers.append
    )
    assert answers == [stored] and stored == [True, True, False]
    assert await store.inbox.counts() == {"pending": 2}


async def test_on_sqlite_committed_runs_when_the_rows_are_in_the_file(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """The answer a put waits for is given from the commit's hand-back: by then the rows are
    in the file."""
    seen: list[set[str]] = []

    def look(stored: list[bool]) -> None:
        seen.append(keys_seen_elsewhere(tmp_path / "bot.db"))

    await sqlite_store.interactions.put_many([delivery("f1"), delivery("f2")], committed=look)
    assert seen == [{"f1", "f2"}]


async def test_on_sqlite_a_put_whose_commit_fails_is_never_answered_as_stored(
    sqlite_store: Store,
) -> None:
    refuse_commits = True

    def refuse(action: int, arg1: str | None, *args: Any) -> int:
        commit = action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT"
        return sqlite3.SQLITE_DENY if commit and refuse_commits else sqlite3.SQLITE_OK

    on_new_connections(sqlite_store, lambda raw: raw.set_authorizer(refuse))
    inbox = sqlite_store.interactions
    answers: list[list[bool]] = []
    with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
        await inbox.put_many([delivery("r1")], committed=answers.append)
    with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
        await inbox.put(delivery("r2"))
    assert answers == []
    refuse_commits = False
    assert await inbox.put(delivery("r1")) is True  # nothing was kept
    assert await inbox.counts() == {"pending": 1}
