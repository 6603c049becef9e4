"""The loop-lag heartbeat: lateness goes to the histogram, the worst stall to the gauge."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from bot.metrics import Metrics


def ticks(values: list[float]) -> Iterator[float]:
    yield from values
    while True:
        yield values[-1] + 100.0


async def test_a_late_wake_up_is_recorded_as_the_worst_stall() -> None:
    metrics = Metrics()
    lag = metrics.lag_monitor(interval=0.001)
    clock = ticks([0.0, 0.751])  # due at 0.001, woke at 0.751: 0.75 s late
    lag.clock = lambda: next(clock)
    lag.start()
    while len(lag.samples) < 1:
        await asyncio.sleep(0.001)
    await lag.stop()
    assert abs(lag.samples[0] - 0.75) < 1e-9 and abs(lag.max - 0.75) < 1e-9
    text = metrics.render().decode()
    assert "mlops_bot_event_loop_lag_max_seconds 0.75" in text
    assert 'mlops_bot_event_loop_lag_seconds_bucket{le="1.0"} 1.0' in text
    assert 'mlops_bot_event_loop_lag_seconds_bucket{le="0.5"} 0.0' in text


def test_percentiles_and_reset() -> None:
    lag = Metrics().lag_monitor()
    for late in (0.001, 0.002, 0.003, 0.5, -0.001):
        lag.record(late)
    assert lag.percentile(50) == 0.002 and lag.percentile(100) == 0.5 and lag.max == 0.5
    lag.reset()
    assert lag.percentile(99) == 0.0 and lag.max == 0.0
