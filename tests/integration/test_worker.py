"""The inbox worker over a real store: marks after the effect, retries, gives up, stops cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.clock import utcnow
from bot.store import Store
from bot.store.inbox import BatchResult, Delivery, InboxItem
from bot.worker import Worker
from tests.helpers import eventually


class Recorder:
    """A processor that records batches and answers with ``outcome`` (done by default)."""

    def __init__(self, outcome: str = "done", block: asyncio.Event | None = None) -> None:
        self.outcome = outcome
        self.block = block
        self.batches: list[list[str]] = []

    async def process(self, items: Sequence[InboxItem]) -> BatchResult:
        self.batches.append([item.key for item in items])
        if self.block is not None:
            await self.block.wait()
        ids = [item.id for item in items]
        if self.outcome == "fail":
            return BatchResult(failed=dict.fromkeys(ids, "Slack said no"))
        if self.outcome == "ignore":
            return BatchResult(ignored=dict.fromkeys(ids, "not for us"))
        return BatchResult(done=ids)

    async def housekeeping(self, now: datetime) -> None:
        return None


def delivery(key: str) -> Delivery:
    return Delivery(key, "pipeline", "ml/fraud", "{}")


async def counts(store: Store) -> dict[str, int]:
    return await store.inbox.counts()


async def test_deliveries_are_marked_processed_only_after_their_effect_settles(
    store: Store,
) -> None:
    settled = asyncio.Event()
    processor = Recorder()
    worker = Worker(
        store.inbox, processor, settle=settled.wait, retention=timedelta(hours=1), pace=0
    )
    for key in ("a", "b", "c"):
        await store.inbox.put(delivery(key))
    worker.start()
    try:
        await eventually(lambda: _true(bool(processor.batches)))
        assert processor.batches == [["a", "b", "c"]]
        await asyncio.sleep(0.1)
        assert await counts(store) == {"pending": 3}  # the Slack edits are not out yet
        await store.inbox.put(delivery("d"))
        worker.wake()
        await eventually(lambda: _true(len(processor.batches) == 2))
        assert processor.batches[1] == ["d"]  # rows in hand are not handed out twice
        settled.set()
        await eventually(lambda: _has(store, {"processed": 4}))
    finally:
        await worker.stop(grace=1)


async def test_failures_come_back_after_a_backoff_then_give_up(store: Store) -> None:
    processor = Recorder("fail")
    past = utcnow() - timedelta(hours=1)  # every retry is due at once
    worker = Worker(
        store.inbox,
        processor,
        settle=_nothing,
        retention=timedelta(hours=1),
        max_attempts=3,
        clock=lambda: past,
        pace=0,
    )
    await store.inbox.put(delivery("a"))
    worker.start()
    try:
        await eventually(lambda: _has(store, {"failed": 1}))
    finally:
        await worker.stop(grace=1)
    assert processor.batches == [["a"], ["a"], ["a"]]


async def test_ignored_deliveries_keep_their_reason(store: Store) -> None:
    worker = Worker(store.inbox, Recorder("ignore"), settle=_nothing, retention=timedelta(hours=1))
    await store.inbox.put(delivery("a"))
    assert await worker.run_once() == 1
    assert await counts(store) == {"ignored": 1}
    assert await worker.run_once() == 0


async def test_stopping_mid_batch_leaves_the_deliveries_pending(store: Store) -> None:
    processor = Recorder(block=asyncio.Event())  # never finishes
    worker = Worker(store.inbox, processor, settle=_nothing, retention=timedelta(hours=1))
    await store.inbox.put(delivery("a"))
    worker.start()
    await eventually(lambda: _true(bool(processor.batches)))
    await worker.stop(grace=0.1)
    assert await counts(store) == {"pending": 1}  # the next start processes it


async def test_processed_rows_are_pruned_after_the_retention(store: Store) -> None:
    later = utcnow() + timedelta(hours=2)
    worker = Worker(
        store.inbox,
        Recorder(),
        settle=_nothing,
        retention=timedelta(hours=1),
        clock=lambda: later,
        prune_every=0.1,
    )
    await store.inbox.put(delivery("a"))
    worker.start()
    try:
        await eventually(lambda: _has(store, {}))  # processed, then two hours "later" pruned
    finally:
        await worker.stop(grace=1)


async def _nothing() -> None:
    return None


async def _true(value: bool) -> bool:
    return value


async def _has(store: Store, expected: dict[str, int]) -> bool:
    return await counts(store) == expected
