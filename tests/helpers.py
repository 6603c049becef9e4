"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until the async ``check`` holds; fail the test with a timeout otherwise."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)
