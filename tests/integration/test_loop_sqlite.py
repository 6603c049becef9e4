"""The SQLite driver the store runs on: statements on the loop, a commit's sync in a thread, a
lock held by another process waited for without holding up the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.domain.deploys import Freeze
from bot.store.core import Store
from bot.store.errors import StoreTimeout
from tests.helpers import (
    Ticker,
    migrated_sqlite_store,
    on_commits_in_a_thread,
    on_new_connections,
    sqlite_lock_held,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with migrated_sqlite_store(tmp_path, timeout=2) as store:
        yield store


def a_freeze(reason: str) -> Freeze:
    return Freeze("U1", reason, datetime.now(UTC))


def traced(store: Store) -> list[tuple[str, bool]]:
    """Every statement SQLite runs from now on, and whether it ran on the loop's thread."""
    seen: list[tuple[str, bool]] = []
    loop_thread = threading.get_ident()

    def note(sql: str) -> None:
        seen.append((sql.split()[0].upper(), threading.get_ident() == loop_thread))

    on_new_connections(store, lambda raw: raw.set_trace_callback(note))
    return seen


async def test_a_write_runs_on_the_loop_and_only_its_commit_in_a_thread(store: Store) -> None:
    seen = traced(store)
    async with store.db.write() as conn:
        await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    writes = [entry for entry in seen if entry[0] in ("BEGIN", "INSERT", "COMMIT")]
    assert writes == [("BEGIN", True), ("INSERT", True), ("COMMIT", False)]


async def test_a_transaction_that_only_read_ends_on_the_loop(store: Store) -> None:
    seen = traced(store)
    async with store.db.write() as conn:
        assert (await conn.execute(sa.text("SELECT 41 + 1"))).scalar() == 42
    assert [entry for entry in seen if entry[0] in ("SELECT", "COMMIT")] == [
        ("SELECT", True),
        ("COMMIT", True),
    ]


async def test_no_turn_of_the_loop_passes_inside_a_write_transaction(store: Store) -> None:
    """The write lock is held for the transaction's own work: nothing else on the loop runs
    between its first statement and its commit."""
    others: list[str] = []
    async with store.db.write() as conn:
        asyncio.get_running_loop().call_soon(others.append, "another task's turn")
        await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        await conn.execute(sa.text("INSERT INTO t VALUES (1), (2)"))
        assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar() == 2
        assert others == []


async def test_a_lock_held_elsewhere_is_waited_for_while_the_loop_goes_on(
    store: Store, tmp_path: Path
) -> None:
    async with Ticker() as ticker:
        with sqlite_lock_held(tmp_path / "bot.db") as other:
            write = asyncio.create_task(store.set_freeze(a_freeze("release day")))
            await asyncio.sleep(0.3)
            assert not write.done()
            assert ticker.ticks >= 10
            other.execute("COMMIT")
        await write
    found = await store.get_freeze()
    assert found is not None and found.reason == "release day"


@pytest.mark.parametrize("end", ["timed out", "cancelled"])
async def test_a_write_that_never_got_the_lock_leaves_nothing_and_the_store_goes_on(
    store: Store, tmp_path: Path, end: str
) -> None:
    with sqlite_lock_held(tmp_path / "bot.db"):
        write = asyncio.create_task(store.set_freeze(a_freeze("never")))
        if end == "cancelled":
            await asyncio.sleep(0.1)
            write.cancel()
        with pytest.raises(StoreTimeout if end == "timed out" else asyncio.CancelledError):
            await write  # a cancel at once: nothing of the write runs in a thread
    assert await store.get_freeze() is None
    await store.set_freeze(a_freeze("after"))
    found = await store.get_freeze()
    assert found is not None and found.reason == "after"


async def test_a_write_cancelled_during_its_commit_returns_once_the_commit_is_done(
    store: Store,
) -> None:
    """The commit's thread owns the connection until it is done: the cancel is raised only
    then, the row is committed, and the next write finds the store as usual."""
    entered, finished = threading.Event(), threading.Event()

    def a_slow_sync() -> None:
        entered.set()
        finished.wait(5)  # a sync to disk that takes its time

    on_commits_in_a_thread(store, a_slow_sync)
    write = asyncio.create_task(store.set_freeze(a_freeze("mid-commit")))
    assert await asyncio.to_thread(entered.wait, 5)
    write.cancel()
    await asyncio.sleep(0.1)
    assert not write.done()  # still waiting for the thread, though cancelled
    finished.set()
    with pytest.raises(asyncio.CancelledError):
        await write
    found = await store.get_freeze()
    assert found is not None and found.reason == "mid-commit"
    assert await store.clear_freeze() == found
    assert await store.get_freeze() is None


async def test_a_commit_that_fails_in_its_thread_is_raised_to_the_writer(store: Store) -> None:
    def refuse(action: int, *args: Any) -> int:
        return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_TRANSACTION else 0

    on_new_connections(store, lambda raw: raw.set_authorizer(refuse))
    with pytest.raises(sa.exc.DatabaseError, match="not authorized"):
        await store.set_freeze(a_freeze("refused"))
