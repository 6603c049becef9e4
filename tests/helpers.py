"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.domain.runs import Run, RunState


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
