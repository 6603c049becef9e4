"""One SQLite writer at a time inside the process, with the webhook acknowledgement first.

SQLite has a single write lock. Writers that collide wait in its busy handler, whose sleeps grow
to 100 ms, and those sleeps would land on GitLab's acknowledgement. Writes that pass through the
gate queue here instead, and urgent ones (the inbox insert a 200 waits on) go before the rest.
On PostgreSQL writers do not block each other, so the gate lets everything through.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from bot.domain.cards import CardRef


class WriteGate:
    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._busy = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def hold(self, *, urgent: bool = False) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    def try_hold(self) -> bool:
        """Take the gate now if nobody holds it (then ``release`` it); False if taken."""
        if self._busy and self.enabled:
            return False
        self._busy = self.enabled
        return True

    def release(self) -> None:
        if self.enabled:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if not self._busy:
            self._busy = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._normal).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed over just as we gave up: pass it on
            raise

    def _release(self) -> None:
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._busy = False


class CardStore(Protocol):
    async def save_card(self, ref: CardRef) -> None: ...

    async def get_card(self, key: str) -> CardRef | None: ...


class GatedCardStore:
    """The card table, with its writes passing through the gate (reads need no gate)."""

    def __init__(self, store: CardStore, gate: WriteGate) -> None:
        self.store = store
        self.gate = gate

    async def save_card(self, ref: CardRef) -> None:
        async with self.gate.hold():
            await self.store.save_card(ref)

    async def get_card(self, key: str) -> CardRef | None:
        return await self.store.get_card(key)
