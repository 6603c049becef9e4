"""SQLite on the event loop: statements run where they are called, a commit's sync in a thread.

SQLite has one write lock per file, held from ``BEGIN IMMEDIATE`` to ``COMMIT``. Through
aiosqlite every step of a statement (cursor, execute, rows, close; the BEGIN and the COMMIT
too) is a hand-over to the driver's thread and back, and on a busy loop each hand-back waits
for a turn: a short write held the lock for 15-64 ms while the inserts Slack's acks wait for
queued behind it. Here a statement runs on the loop (an indexed statement takes microseconds,
and nothing between the statements of a transaction yields to the loop), so a transaction
holds the lock for its own CPU time plus one commit. Two things never happen on the loop:

- waiting for a lock another process holds: the connection's ``busy_timeout`` is 0, and a
  statement that finds the file locked is tried again after a pause (1 ms, doubling to
  25 ms) during which the loop goes on, until the ``timeout`` given to ``connect`` has passed
  (then the "database is locked" error is raised, as with any driver);
- the commit of a transaction that wrote rows, whose sync to disk is the one slow step: it
  runs in a thread, and a cancelled caller still waits for that thread, so a connection is
  never used from two threads at once. A transaction that only read ends on the loop.

Durability is the file's (its ``synchronous`` setting), as with any driver. Writers inside the
process take turns at the store's write gate, so they do not meet each other's lock here.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar, cast

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.url import URL
from sqlalchemy.util.concurrency import await_, in_greenlet

DRIVER = "sqlite+loop"  # registered below as the dialect "sqlite.loop"
FIRST_PAUSE = 0.001
LAST_PAUSE = 0.025
T = TypeVar("T")

# Commits never wait for a lock (busy_timeout 0), so a few threads serve every store.
_commits: Executor | None = None


def _committer() -> Executor:
    global _commits
    if _commits is None:
        _commits = ThreadPoolExecutor(4, thread_name_prefix="sqlite-commit")
    return _commits


class _HandOff:
    """The outcome of a call in a commit thread, handed to the loop by one callback that
    wakes the waiting task directly (no future chained to another in between: each link
    would cost the waiter one more turn of a busy loop)."""

    __slots__ = ("outcome", "then", "waiter")

    def __init__(self, then: Callable[[], None] | None) -> None:
        self.outcome: tuple[bool, Any] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.then = then

    def deliver(self, outcome: tuple[bool, Any]) -> None:
        if outcome[0] and self.then is not None:
            try:
                self.then()
            except Exception as err:  # raised to the caller, as the call's own would be
                outcome = (False, err)
        self.outcome = outcome
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


async def in_thread(call: Callable[[], T], then: Callable[[], None] | None = None) -> T:
    """``call`` in a commit thread; a cancel is raised only once the thread is done with the
    connection. ``then`` runs on the loop as soon as ``call`` has succeeded, in the callback
    that wakes the waiter (a turn of the loop before it)."""
    loop = asyncio.get_running_loop()
    hand_off = _HandOff(then)

    def work() -> None:
        try:
            outcome: tuple[bool, Any] = (True, call())
        except BaseException as err:  # handed to the caller, raised there
            outcome = (False, err)
        loop.call_soon_threadsafe(hand_off.deliver, outcome)

    _committer().submit(work)
    cancelled = False
    while hand_off.outcome is None:
        hand_off.waiter = loop.create_future()
        try:
            await hand_off.waiter
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    ok, value = hand_off.outcome
    if not ok:
        raise value
    return cast(T, value)


async def _nothing() -> None:
    return None


def _returned() -> None:
    """Tell SQLAlchemy's async layer the driver was awaited (it insists on one await per
    statement): an await that does not suspend, so the loop gets no turn mid-transaction."""
    if in_greenlet():
        await_(_nothing())


def _locked(err: sqlite3.OperationalError) -> bool:
    return "database is locked" in str(err) or "database is busy" in str(err)


class LoopCursor:
    """A sqlite3 cursor whose statements wait on the loop's terms when the file is locked,
    and whose rows are read at once (no statement stays open between turns of the loop)."""

    __slots__ = ("_connection", "_cursor", "_rows")

    def __init__(self, connection: LoopConnection) -> None:
        self._connection = connection
        self._cursor = connection.raw.cursor()
        self._rows: deque[Any] = deque()

    def __getattr__(self, name: str) -> Any:  # description, rowcount, lastrowid, arraysize
        return getattr(self._cursor, name)

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> LoopCursor:
        self._connection.run(self._cursor.execute, sql, parameters)
        self._rows = deque(self._cursor.fetchall() if self._cursor.description else ())
        _returned()
        return self

    def executemany(self, sql: str, seq: Sequence[Any]) -> LoopCursor:
        self._connection.run(self._cursor.executemany, sql, seq)
        self._rows.clear()
        _returned()
        return self

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self._cursor.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def close(self) -> None:
        self._rows.clear()
        self._cursor.close()

    async def _async_soft_close(self) -> None:
        """SQLAlchemy's async layer closes cursors through this; the rows are read already."""


class LoopConnection:
    """A sqlite3 connection driven from the loop, in SQLAlchemy's DBAPI shape."""

    __slots__ = ("_changes", "_wait", "raw")

    def __init__(self, raw: sqlite3.Connection, wait: float) -> None:
        self.raw = raw
        self._wait = wait
        self._changes = raw.total_changes  # rows written when the last transaction ended

    @property
    def isolation_level(self) -> str | None:
        return self.raw.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self.raw.isolation_level = value  # type: ignore[assignment]  # sqlite3 checks it

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def cursor(self) -> LoopCursor:
        return LoopCursor(self)

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        self.raw.create_function(*args, **kwargs)

    def commit(self, then: Callable[[], None] | None = None) -> None:
        """From SQLAlchemy's greenlet: a transaction that wrote rows commits in a thread (its
        sync to disk); one that only read has nothing to sync and ends here. ``then``: run
        once committed (see ``in_thread``)."""
        if self.raw.total_changes == self._changes:
            self._end_read(then)
        else:
            await_(self.commit_wrote(then))

    async def commit_wrote(self, then: Callable[[], None] | None = None) -> None:
        """``commit`` awaited on the loop, for a transaction that wrote rows."""
        await in_thread(self.raw.commit, then)
        self._changes = self.raw.total_changes

    def _end_read(self, then: Callable[[], None] | None) -> None:
        self.raw.commit()
        self._changes = self.raw.total_changes
        if then is not None:
            then()

    def rollback(self) -> None:
        self.raw.rollback()
        self._changes = self.raw.total_changes

    def close(self) -> None:
        self.raw.close()

    def run(self, call: Callable[..., T], *args: Any) -> T:
        """``call`` now; in SQLAlchemy's greenlet, while another process holds the lock, again
        after growing pauses in which the loop goes on (see ``run_async``)."""
        try:
            return call(*args)
        except sqlite3.OperationalError as err:
            if not _locked(err) or not in_greenlet():
                raise
        return await_(self._again(call, args))

    async def run_async(self, call: Callable[..., T], *args: Any) -> T:
        """``call`` now; while another process holds the lock, again after growing pauses in
        which the loop goes on, for up to the connection's wait."""
        try:
            return call(*args)
        except sqlite3.OperationalError as err:
            if not _locked(err):
                raise
        return await self._again(call, args)

    async def _again(self, call: Callable[..., T], args: tuple[Any, ...]) -> T:
        deadline = time.monotonic() + self._wait
        pause = FIRST_PAUSE
        while True:
            await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, LAST_PAUSE)
            try:
                return call(*args)
            except sqlite3.OperationalError as err:
                if not _locked(err) or time.monotonic() >= deadline:
                    raise


class LoopDBAPI:
    """The sqlite3 module, with ``connect`` handing out loop connections."""

    paramstyle = "qmark"

    def __getattr__(self, name: str) -> Any:  # the exception classes, sqlite_version_info, ...
        return getattr(sqlite3, name)

    def connect(self, database: str, *, timeout: float = 5.0, **kwargs: Any) -> LoopConnection:
        """``timeout``: how long a statement may wait for a lock held elsewhere."""
        kwargs["check_same_thread"] = False  # commits run in a thread
        raw = sqlite3.connect(database, timeout=0, **kwargs)
        return LoopConnection(raw, timeout)


class LoopSQLiteDialect(SQLiteDialect_pysqlite):
    driver = "loop"
    is_async = True
    has_terminate = False
    supports_statement_cache = True
    supports_server_side_cursors = False

    @classmethod
    def import_dbapi(cls) -> Any:
        return LoopDBAPI()

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool

    def get_driver_connection(self, connection: Any) -> Any:
        return connection


registry.register("sqlite.loop", __name__, "LoopSQLiteDialect")
