"""One SQLite writer at a time inside the process, with the inserts acks wait for first.

SQLite has a single write lock. Writers that collide wait in its busy handler, whose sleeps grow
to 100 ms, and those sleeps would land on the acks of Slack and GitLab. Every write transaction
of the store (``Database.write``) queues here instead, and urgent ones (the inbox inserts a
200 waits on) go before the rest; only writers in other processes meet the busy handler. On
PostgreSQL writers do not block each other, so the gate lets everything through.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WriteGate:
    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._busy = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def hold(self, *, urgent: bool = False) -> AsyncIterator[None]:
        await self.acquire(urgent=urgent)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, *, urgent: bool = False) -> None:
        """Wait for this writer's turn (``hold`` without a context manager's cost, for the
        insert every ack waits on); each ``acquire`` that returns needs one ``release``."""
        if not self.enabled:
            return
        if not self._busy:
            self._busy = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._normal).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as we gave up: pass it on
            raise

    def release(self) -> None:
        if not self.enabled:
            return
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._busy = False
