"""The inbox insert written from the event loop itself (SQLite only): one thread hop per batch.

An aiosqlite transaction hands each of its steps to the driver's thread and back (BEGIN, the
cursor, the insert, its rows, the commit), and on a busy machine every hand-over waits for a
thread switch. This writer has its own connection to the same file: it takes the write lock and
inserts on the loop (BEGIN IMMEDIATE and a short INSERT take microseconds), and only the COMMIT,
whose sync to disk is the one slow step, goes to a thread of its own. Durability is the file's
(its synchronous setting). It never waits for the write lock (busy_timeout 0): when another
connection holds it, the insert fails at once and the caller takes the usual path, which
waits off the loop. It never checkpoints the WAL (the store's own connections do), so its
commit costs no more than the sync.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, RootTransaction

from bot.store.engine import IMMEDIATE, configure_sqlite


class InlineWriter:
    """One connection to the store's SQLite file, for short inserts made on the loop."""

    def __init__(self, database: str) -> None:
        self.engine = _engine(database)
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="inbox-commit")

    @classmethod
    def for_url(cls, url: URL) -> InlineWriter | None:
        """A writer for an SQLite store; None for any other."""
        if url.get_backend_name() != "sqlite" or not url.database:
            return None
        return cls(str(Path(url.database).expanduser()))

    async def insert(
        self, stmt: sa.Executable, rows: list[dict[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """Run ``stmt`` with ``rows`` in one transaction and return its RETURNING rows once
        it has committed; any failure leaves nothing written."""
        conn = self.engine.connect()
        try:
            transaction = conn.begin()  # Locked at once when another writer holds the lock
        except BaseException:
            conn.close()
            raise
        try:
            inserted = [tuple(row) for row in conn.execute(stmt, rows)]
        except BaseException:
            _end(conn, transaction, commit=False)
            raise
        # the commit (and its ending) in the thread: cancelling this await cannot race it
        await asyncio.get_running_loop().run_in_executor(
            self._committer, _end, conn, transaction, True
        )
        return inserted

    def close(self) -> None:
        self._committer.shutdown(wait=True)
        self.engine.dispose()


def _end(conn: Connection, transaction: RootTransaction, commit: bool) -> None:
    """Commit (or roll back) and hand the connection back; a failed commit rolls back."""
    try:
        if commit:
            transaction.commit()
        else:
            transaction.rollback()
    except BaseException:
        transaction.rollback()
        raise
    finally:
        conn.close()


def _engine(database: str) -> Engine:
    engine = sa.create_engine(
        f"sqlite+pysqlite:///{database}",
        poolclass=sa.pool.StaticPool,
        connect_args={"check_same_thread": False},  # only the COMMIT runs in the thread
    )
    configure_sqlite(engine, "busy_timeout=0", "wal_autocheckpoint=0")
    return engine.execution_options(**{IMMEDIATE: True})
