"""The A/B repository on SQLite and PostgreSQL: one active experiment per environment,
compare-and-set transitions, history, votes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.ab import AbChange, AbState, ChangeState, Experiment, GuardReading
from bot.errors import Conflict
from bot.store import Store

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def draft(env: str = "prod") -> Experiment:
    return Experiment(0, "fraud", env, "prod-b", AbState.DEPLOYING, "U0ALICE", AT, weight=10)


async def test_one_active_experiment_per_environment(store: Store) -> None:
    first = await store.ab.create(draft())
    await store.ab.create(draft("stg"))

    with pytest.raises(Conflict, match="fraud/prod already has an A/B experiment running"):
        await store.ab.create(draft())
    ended = await store.ab.update(first.id, only_if=[AbState.DEPLOYING], state=AbState.FAILED)
    assert ended is not None and ended.state == AbState.FAILED
    second = await store.ab.create(draft())

    assert [e.id for e in await store.ab.active("fraud", "prod")] == [second.id]
    assert (await store.ab.latest("fraud", "prod")) == second


async def test_concurrent_starts_leave_one_active(store: Store) -> None:
    results = await asyncio.gather(
        *(store.ab.create(draft()) for _ in range(4)), return_exceptions=True
    )
    assert sum(isinstance(r, Experiment) for r in results) == 1
    assert all(isinstance(r, (Experiment, Conflict)) for r in results)


async def test_transitions_happen_once_and_readings_round_trip(store: Store) -> None:
    e = await store.ab.create(draft())
    reading = GuardReading("5xx rate", "5xx", 0.0, 0.2, 0.2, high=0.01, breached=True)

    moved = await store.ab.update(
        e.id, only_if=[AbState.DEPLOYING], state=AbState.RUNNING, readings=[reading], breaches=2
    )
    again = await store.ab.update(e.id, only_if=[AbState.DEPLOYING], state=AbState.FAILED)

    assert again is None
    assert moved is not None and moved.readings == [reading] and moved.breaches == 2
    assert moved.state == AbState.RUNNING and moved.state.active


async def test_history_pending_changes_votes_and_expiry(store: Store) -> None:
    e = await store.ab.create(draft())
    await store.ab.add_change(AbChange(0, e.id, AT, "U0ALICE", "start", detail="go"))
    pending = await store.ab.add_change(
        AbChange(
            0, e.id, AT, "U0ALICE", "set", ChangeState.AWAITING_APPROVAL, 10, 50,
            expires_at=AT + timedelta(minutes=5),
        )
    )  # fmt: skip
    await store.ab.vote(pending.id, "U0BOB", approve=True, via="reaction", at=AT)
    await store.ab.vote(pending.id, "U0CAROL", approve=False, via="button", at=AT)

    found = await store.ab.pending(e.id)
    assert found is not None and found.approvers == ("U0BOB",) and found.rejecters == ("U0CAROL",)
    assert await store.ab.withdraw(pending.id, "U0BOB", approve=True)
    assert not await store.ab.withdraw(pending.id, "U0CAROL", approve=False)  # a button vote
    assert await store.ab.expired(AT) == []
    assert [c.id for c in await store.ab.expired(AT + timedelta(minutes=6))] == [pending.id]
    closed = await store.ab.update_change(
        pending.id, only_if=[ChangeState.AWAITING_APPROVAL], state=ChangeState.EXPIRED
    )
    assert closed is not None and await store.ab.pending(e.id) is None
    assert [c.action for c in await store.ab.history(e.id)] == ["start", "set"]
