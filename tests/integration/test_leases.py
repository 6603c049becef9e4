"""The leader lease and fencing, against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from bot.domain.access import AuditEvent, Outcome
from bot.domain.deploys import Lock
from bot.leadership import LeaderElector, Timing
from bot.store import Store
from bot.store.leases import LEADER, Deposed, fenced
from bot.store.rows import audit_values
from bot.store.schema import audit_events

FAST = Timing(lease=0.8, renew=0.2)


def an_event(correlation_id: str) -> AuditEvent:
    return AuditEvent(
        actor="bot",
        action="tick",
        target="loop",
        outcome=Outcome.OK,
        correlation_id=correlation_id,
        at=datetime.now(UTC),
    )


async def written_by(store: Store, prefix: str) -> list[str]:
    events = await store.audit_events(limit=10_000)
    return [e.correlation_id for e in events if e.correlation_id.startswith(prefix)]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.02)


@pytest.fixture
async def second_store(store: Store, store_url: str) -> AsyncIterator[Store]:
    """Another replica's store: its own engine on the same database."""
    other = Store.from_url(store_url)
    yield other
    await other.close()


# -- acquire / renew / release ----------------------------------------------------------------


async def test_one_holder_at_a_time_and_every_new_holder_gets_the_next_term(store: Store) -> None:
    a = await store.leases.acquire(LEADER, "a", 30)
    assert a is not None and a.term == 1
    assert await store.leases.acquire(LEADER, "b", 30) is None
    renewed = await store.leases.renew(a, 30)
    assert renewed is not None and renewed.term == 1 and renewed.expires_at > a.expires_at
    assert await store.leases.release(renewed)
    b = await store.leases.acquire(LEADER, "b", 30)
    assert b is not None and b.term == 2
    assert await store.leases.renew(a, 30) is None
    assert not await store.leases.release(a)
    current = await store.leases.current(LEADER)
    assert current is not None and (current.holder, current.term) == ("b", 2)


async def test_an_expired_lease_is_taken_over_with_the_next_term(store: Store) -> None:
    a = await store.leases.acquire(LEADER, "a", 0.2)
    assert a is not None
    await asyncio.sleep(0.3)
    b = await store.leases.acquire(LEADER, "b", 30)
    assert b is not None and b.term == a.term + 1
    assert await store.leases.renew(a, 30) is None


async def test_a_holder_reacquiring_its_own_lease_starts_a_new_term(store: Store) -> None:
    a = await store.leases.acquire(LEADER, "a", 30)
    again = await store.leases.acquire(LEADER, "a", 30)
    assert a is not None and again is not None and again.term == a.term + 1


async def test_replicas_racing_for_the_lease_elect_exactly_one(
    store: Store, second_store: Store
) -> None:
    stores = [store, second_store] * 4
    results = await asyncio.gather(
        *(s.leases.acquire(LEADER, f"r{i}", 30) for i, s in enumerate(stores))
    )
    won = [lease for lease in results if lease is not None]
    assert len(won) == 1 and won[0].term == 1


# -- fencing ----------------------------------------------------------------------------------


async def test_a_deposed_leaders_write_is_refused_and_changes_nothing(
    store: Store, second_store: Store
) -> None:
    old = await store.leases.acquire(LEADER, "old", 0.2)
    assert old is not None
    with fenced(old):
        await store.record_audit(an_event("old:1"))
    await asyncio.sleep(0.3)  # the old leader is paused past its lease
    new = await second_store.leases.acquire(LEADER, "new", 30)
    assert new is not None and new.term == old.term + 1
    with fenced(old), pytest.raises(Deposed, match=f"term {old.term} of the leader lease"):
        await store.record_audit(an_event("old:2"))
    with fenced(old), pytest.raises(Deposed):
        await store.acquire_lock(Lock("fraud", "prod", "old", "deploy", datetime.now(UTC)))
    with fenced(new):
        await second_store.record_audit(an_event("new:1"))
    await store.record_audit(an_event("unfenced:1"))  # requests carry no fence: never refused
    assert await written_by(store, "old") == ["old:1"]
    assert await store.get_lock("fraud", "prod") is None
    assert await written_by(store, "new") == ["new:1"]


async def test_tasks_started_under_a_fence_inherit_it(store: Store, second_store: Store) -> None:
    old = await store.leases.acquire(LEADER, "old", 30)
    assert old is not None
    with fenced(old):
        child = asyncio.get_running_loop().create_task(asyncio.sleep(0.2))
        write = asyncio.get_running_loop().create_task(
            _after(child, store.record_audit(an_event("old:late")))
        )
    assert await second_store.leases.acquire(LEADER, "new", 30, force=True) is not None
    with pytest.raises(Deposed):
        await write
    assert await written_by(store, "old") == []


async def _after(first: asyncio.Task[None], then: Awaitable[int]) -> int:
    await first
    return await then


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_on_postgresql_a_takeover_waits_for_the_old_terms_write_to_commit(
    store: Store, second_store: Store
) -> None:
    old = await store.leases.acquire(LEADER, "old", 30)
    assert old is not None
    order: list[str] = []
    with fenced(old):
        async with store.db.write() as conn:  # holds the lease row FOR SHARE until commit
            takeover = asyncio.create_task(
                second_store.leases.acquire(LEADER, "new", 30, force=True)
            )
            await asyncio.sleep(0.3)
            assert not takeover.done()
            order.append("old write committed")
            await conn.execute(audit_events.insert().values(audit_values(an_event("old:in"))))
    new = await takeover
    order.append("new term began")
    assert new is not None and new.term == old.term + 1
    assert order == ["old write committed", "new term began"]
    assert await written_by(store, "old") == ["old:in"]


# -- the elector ------------------------------------------------------------------------------


def ticking(store: Store, name: str) -> Callable[[], Awaitable[None]]:
    """A singleton loop: one audit row per tick, named after the replica that wrote it."""

    async def loop() -> None:
        n = 0
        while True:
            n += 1
            await store.record_audit(an_event(f"{name}:{n}"))
            await asyncio.sleep(0.05)

    return loop


async def test_one_elector_leads_and_the_other_takes_over_when_it_stops(
    store: Store, second_store: Store
) -> None:
    led: list[str] = []

    async def on_lead_a() -> None:
        led.append("a")

    a = LeaderElector(store.leases, [("tick", ticking(store, "a"))], FAST, on_lead=on_lead_a)
    b = LeaderElector(second_store.leases, [("tick", ticking(second_store, "b"))], FAST)
    await a.start()
    await b.start()
    try:
        assert a.leading and not b.leading and led == ["a"]

        async def a_ticked() -> bool:
            return len(await written_by(store, "a:")) >= 3

        await eventually(a_ticked)
        assert await written_by(store, "b:") == []
        await a.stop()  # releases the lease: b takes over within one renew interval
        stopped_at = len(await written_by(store, "a:"))

        async def b_ticked() -> bool:
            return len(await written_by(store, "b:")) >= 3

        await eventually(b_ticked, seconds=3)
        assert b.terms == [a.terms[-1] + 1]
        assert len(await written_by(store, "a:")) == stopped_at
    finally:
        await a.stop()
        await b.stop()


async def test_a_leader_that_dies_is_replaced_after_its_lease_expires(
    store: Store, second_store: Store
) -> None:
    a = LeaderElector(store.leases, [], FAST)
    b = LeaderElector(second_store.leases, [], FAST)
    await a.start()
    await b.start()
    try:
        assert a._task is not None
        a._task.cancel()  # a's process stops renewing (as if killed); nobody releases
        lease = a.lease
        assert lease is not None

        async def b_leads() -> bool:
            return b.leading

        loop = asyncio.get_running_loop()
        began = loop.time()
        await eventually(b_leads, seconds=5)
        took = loop.time() - began
        assert FAST.lease * 0.5 < took < FAST.lease + FAST.renew + 1.0
        assert b.terms == [lease.term + 1]
    finally:
        await b.stop()
        a.lease = None


async def test_a_paused_leader_is_deposed_by_its_refused_write_and_stops_its_loops(
    store: Store, second_store: Store
) -> None:
    # a renews far less often than its lease lasts: it is "paused" past the lease's end
    slow = Timing(lease=0.3, renew=5.0)
    a = LeaderElector(store.leases, [("tick", ticking(store, "a"))], slow)
    b = LeaderElector(second_store.leases, [("tick", ticking(second_store, "b"))], FAST)
    await a.start()
    await b.start()
    try:

        async def b_leads_and_a_stepped_down() -> bool:
            return b.leading and not a.leading

        await eventually(b_leads_and_a_stepped_down, seconds=5)
        a_rows = await written_by(store, "a:")
        await asyncio.sleep(0.3)
        assert await written_by(store, "a:") == a_rows  # a's loop no longer writes
        assert len(await written_by(store, "b:")) > 0
    finally:
        await b.stop()
        with contextlib.suppress(Exception):
            await a.stop()
