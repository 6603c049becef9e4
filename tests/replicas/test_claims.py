"""Replicas sharing one store take each recorded request exactly once (two engines, one DB)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

import pytest

from bot.store import Store
from bot.store.inbox import BatchResult, Delivery, Inbox, InboxItem
from bot.worker import Worker
from tests import sql_count
from tests.helpers import eventually


@pytest.fixture
async def replica(store: Store, store_url: str) -> AsyncIterator[Store]:
    """A second replica's store: its own engine and pool on the same database."""
    other = Store.from_url(store_url)
    yield other
    await other.close()


def a_click(n: int) -> Delivery:
    return Delivery(f"trigger:{n}", "block_actions", None, json.dumps({"n": n}))


async def record(inbox: Inbox, count: int) -> None:
    """Store ``count`` rows as a replica that keeps no first refusal of them (a third one)."""
    recorder = Inbox(inbox.db, table=inbox.table, first_refusal=0)
    try:
        await recorder.put_many([a_click(n) for n in range(count)])
    finally:
        await recorder.close()


async def claim_until_empty(inbox: Inbox, taken: list[str]) -> None:
    while items := await inbox.claim(7, lease=30):
        taken.extend(item.key for item in items)
        await asyncio.sleep(0)  # let the other replica in between claims


async def test_replicas_claiming_together_take_disjoint_rows_and_all_of_them(
    store: Store, replica: Store
) -> None:
    await record(store.interactions, 300)
    mine: list[str] = []
    theirs: list[str] = []
    await asyncio.gather(
        claim_until_empty(store.interactions, mine),
        claim_until_empty(replica.interactions, theirs),
    )
    assert not set(mine) & set(theirs)
    assert len(mine) + len(theirs) == 300 == len(set(mine) | set(theirs))


async def test_a_claim_hides_rows_until_it_lapses_unless_renewed(
    store: Store, replica: Store
) -> None:
    await record(store.interactions, 2)
    held = await store.interactions.claim(10, lease=0.4)
    assert [i.key for i in held] == ["trigger:0", "trigger:1"]
    assert await replica.interactions.claim(10, lease=30) == []
    await store.interactions.renew_claims({held[0].id}, lease=30)
    await asyncio.sleep(0.5)  # the second claim lapsed (its replica died), the first renewed
    taken = await replica.interactions.claim(10, lease=30)
    assert [i.key for i in taken] == ["trigger:1"]


async def test_the_replica_that_stored_a_row_has_the_first_refusal_of_it(
    store: Store, replica: Store
) -> None:
    store.interactions.first_refusal = timedelta(seconds=0.5)
    await store.interactions.put_many([a_click(n) for n in range(3)])
    assert await replica.interactions.claim(10, lease=30) == []  # refused to the others
    (first,) = await store.interactions.claim(1, lease=30)  # its own, at once
    assert first.key == "trigger:0"
    await asyncio.sleep(0.6)  # too busy to take the rest: they go to whoever looks next
    taken = await replica.interactions.claim(10, lease=30)
    assert [i.key for i in taken] == ["trigger:1", "trigger:2"]
    assert await store.interactions.claim(10, lease=30) == []


async def test_after_a_burst_a_claim_binds_a_few_of_the_rows_first_refused_to_others(
    store: Store, replica: Store
) -> None:
    """A replica that stored 1,000 rows a moment ago still takes them oldest first, and its
    statements name only as many of them as it asks for (not every id it holds)."""
    sql_count.install(store.db.engine)
    await store.interactions.put_many([a_click(n) for n in range(1000)])
    (oldest,) = await store.interactions.next_batch(1)
    in_hand = {oldest.id}  # being worked on already
    with sql_count.counting() as found:
        first = await store.interactions.claim(3, lease=30, skip=in_hand)
    assert [i.key for i in first] == ["trigger:1", "trigger:2", "trigger:3"]
    assert max(len(s.parameters) for s in found.statements) < 20
    assert await replica.interactions.claim(10, lease=30) == []  # still refused to the others
    in_hand |= {i.id for i in first}
    taken = await store.interactions.claim(2, lease=30, skip=in_hand)
    assert [i.key for i in taken] == ["trigger:4", "trigger:5"]


async def test_finished_or_released_rows_leave_no_claim_behind(
    store: Store, replica: Store
) -> None:
    await record(store.interactions, 3)
    a, b, c = await store.interactions.claim(10, lease=30)
    await store.interactions.mark_processed([a.id])
    await store.interactions.mark_failed([b.id], "Boom", retry_at=None)
    await store.interactions.release_claims([c.id])  # a replica stopping mid-way
    again = await replica.interactions.claim(10, lease=30)
    assert [i.key for i in again] == [c.key]
    assert await store.interactions.counts() == {"processed": 1, "failed": 1, "pending": 1}


async def test_a_failed_row_is_claimable_again_only_when_its_retry_falls_due(
    store: Store, replica: Store
) -> None:
    await record(store.inbox, 1)
    (item,) = await store.inbox.claim(10, lease=30)
    soon = datetime.now(item.received_at.tzinfo) + timedelta(seconds=0.3)
    await store.inbox.mark_failed([item.id], "Timeout", retry_at=soon)
    assert await replica.inbox.claim(10, lease=30) == []
    await asyncio.sleep(0.4)
    (again,) = await replica.inbox.claim(10, lease=30)
    assert again.attempts == 1


async def test_cards_claimed_by_two_replicas_at_once_are_disjoint(
    store: Store, replica: Store
) -> None:
    for n in range(60):
        await store.cards.desire(f"run:{n}", "C1", f"run {n}")
    first, second = await asyncio.gather(
        store.cards.claim(lease=30, limit=40), replica.cards.claim(lease=30, limit=40)
    )
    keys = [s.key for s in first] + [s.key for s in second]
    assert len(keys) == len(set(keys))
    assert len(keys) == 60


class Recorder:
    """A webhook processor that remembers every delivery it handled, by key."""

    def __init__(self, seen: Counter[str], name: str) -> None:
        self.seen = seen
        self.name = name

    async def process(self, items: Sequence[InboxItem]) -> BatchResult:
        await asyncio.sleep(0.005)
        self.seen.update(item.key for item in items)
        return BatchResult(done=[item.id for item in items])

    async def housekeeping(self, now: datetime) -> None:
        return None


async def test_two_workers_on_one_inbox_process_each_delivery_once(
    store: Store, replica: Store
) -> None:
    seen: Counter[str] = Counter()

    async def settle() -> None:
        return None

    workers = [
        Worker(s.inbox, Recorder(seen, f"w{i}"), settle=settle, retention=timedelta(days=1))
        for i, s in enumerate((store, replica))
    ]
    for worker in workers:
        worker.batch_size = 25
        worker.pace = 0.0
        worker.start()
    try:
        await record(store.inbox, 400)
        for worker in workers:
            worker.wake()

        async def all_processed() -> bool:
            return await store.inbox.counts() == {"processed": 400}

        await eventually(all_processed, timeout=30)
    finally:
        for worker in workers:
            await worker.stop(grace=5)
    assert len(seen) == 400
    assert set(seen.values()) == {1}
