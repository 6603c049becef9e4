"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bot.domain.runs import Run, RunState
from bot.store.core import Store


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until the async ``check`` holds; fail the test with a timeout otherwise."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


def queued_run(requester: str = "U0TEST", **changes: Any) -> Run:
    """A fraud run on GitLab as ``/train`` records it, before its pipeline exists."""
    fields: dict[str, Any] = {
        "id": 0,
        "model": "fraud",
        "backend": "gitlab",
        "state": RunState.QUEUED,
        "requester": requester,
        "ref": "main",
        "created_at": datetime.now(UTC),
        "gpus": 1,
    }
    return Run(**(fields | changes))


class Ticker:
    """Counts 10 ms sleeps of a task of its own: how far the event loop went on meanwhile."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.ticks += 1


@contextlib.contextmanager
def sqlite_lock_held(database: Path) -> Iterator[sqlite3.Connection]:
    """Another connection (as another process would) holding the file's write lock."""
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield other
        finally:
            if other.in_transaction:
                other.execute("ROLLBACK")


@contextlib.asynccontextmanager
async def migrated_sqlite_store(path: Path, *, timeout: float = 10.0) -> AsyncIterator[Store]:
    """A migrated SQLite store in ``path``/bot.db, closed after."""
    store = Store.from_url(f"sqlite:///{path}/bot.db", timeout=timeout)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


def on_new_connections(store: Store, configure: Callable[[sqlite3.Connection], None]) -> None:
    """``configure`` the sqlite3 connection under every connection ``store`` makes from now on.
    Its pool is emptied, so that is every one it uses next (the inbox's insert takes its own
    at its first put)."""

    @event.listens_for(store.db.engine.sync_engine, "connect")
    def configure_raw(dbapi_connection: Any, record: Any) -> None:
        configure(dbapi_connection.raw)

    store.db.engine.sync_engine.pool.dispose()


def on_commits_in_a_thread(store: Store, action: Callable[[], object]) -> None:
    """``action`` at the start of every COMMIT a commit thread (not the loop's) runs for
    ``store``: a sync to disk that takes its time, say."""
    loop_thread = threading.current_thread()

    def on_statement(sql: str) -> None:
        if sql.startswith("COMMIT") and threading.current_thread() is not loop_thread:
            action()

    on_new_connections(store, lambda raw: raw.set_trace_callback(on_statement))
