"""Work still running after its ack, so that shutdown can let it finish before closing the store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class InFlight:
    """Also bounds how much acked work runs at once, so that a burst of commands queues
    cheaply instead of crowding out the event loop that answers Slack's next requests."""

    def __init__(self, concurrency: int = 8) -> None:
        self.tasks: set[asyncio.Task[object]] = set()
        self.slots = asyncio.Semaphore(concurrency)

    @contextlib.asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            async with self.slots:
                yield
        finally:
            if task is not None:
                self.tasks.discard(task)

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for tracked work, including work that registers while
        waiting (acked just before the server stopped); cancel and count what is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await asyncio.sleep(0.05)  # let tasks created by the last requests reach track()
        while pending := {t for t in self.tasks if t is not asyncio.current_task()}:
            remaining = deadline - loop.time()
            if remaining <= 0:
                for task in pending:
                    task.cancel()
                # their finally blocks must run now, while the store is still open
                await asyncio.gather(*pending, return_exceptions=True)
                return len(pending)
            await asyncio.wait(pending, timeout=remaining)
            await asyncio.sleep(0)
        return 0
