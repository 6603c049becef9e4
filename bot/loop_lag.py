"""Event-loop lag: a heartbeat that sleeps a fixed interval and measures how late it wakes.

Whatever blocks the loop (a large JSON document, rendering thousands of rows, a sync SDK call)
delays every ack and every other task by as much; the heartbeat sees that delay as lateness.
Each wake-up goes to a histogram and the worst stall to a gauge (/metrics); ``samples`` keeps
the recent ones for the benches' percentiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from prometheus_client import Gauge, Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopLag:
    def __init__(
        self,
        histogram: Histogram,
        worst: Gauge,
        *,
        interval: float = 0.05,
        keep: int = 20_000,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.histogram = histogram
        self.worst = worst
        self.interval = interval
        self.clock = clock
        self.samples: deque[float] = deque(maxlen=keep)
        self.max = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._beat(), name="loop-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def reset(self) -> None:
        """Forget what was seen so far (a bench measures one phase at a time)."""
        self.samples.clear()
        self.max = 0.0

    def percentile(self, pct: float) -> float:
        ordered = sorted(self.samples)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]

    def record(self, late: float) -> None:
        late = max(0.0, late)
        self.samples.append(late)
        self.histogram.observe(late)
        if late > self.max:
            self.max = late
            self.worst.set(late)

    async def _beat(self) -> None:
        while True:
            due = self.clock() + self.interval
            await asyncio.sleep(self.interval)
            self.record(self.clock() - due)
