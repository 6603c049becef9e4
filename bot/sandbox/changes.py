"""What tests and the console wait on: a stand-in signals each change, waiters re-check."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class Changes:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    def signal(self) -> None:
        self.event.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        """Wait until ``predicate`` holds, re-checking after every change (and every 50 ms)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self.event.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self.event.wait()
