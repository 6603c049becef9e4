"""A deploy's progress in the store (real SQLite and PostgreSQL, see conftest): the final state
and the lock release commit together, never while an ecspresso process group is recorded; a
replayed request finds its deploy; a writer whose attempt was taken over writes nothing; a
deploy whose runner's lease is live is taken by nobody else."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.domain.deploys import Deployment, DeployState, Lock
from bot.services.deploys.ownership import Ownership
from bot.store import Store
from bot.store.deployments import RunnerLease


def now() -> datetime:
    return datetime.now(UTC)


def a_deploy(env: str = "prod", state: DeployState = DeployState.RUNNING) -> Deployment:
    return Deployment(
        id=0,
        model="fraud",
        env=env,
        kind="deploy",
        state=state,
        requester="U1",
        created_at=now(),
        image_tag="v2",
        digest="sha256:" + "a" * 64,
    )


def lock_for(d: Deployment, holder: str | None = None) -> Lock:
    return Lock(
        d.model, d.env, holder or f"deploy #{d.id}", "deploy", now(), now() + timedelta(hours=1)
    )


async def test_the_final_state_and_the_lock_release_are_one_transition(store: Store) -> None:
    d = await store.deployments.create(a_deploy())
    await store.acquire_lock(lock_for(d))

    done = await store.deployments.finish(
        d.id,
        only_if=[DeployState.RUNNING],
        holder=f"deploy #{d.id}",
        state=DeployState.SUCCEEDED,
        revision=2,
        finished_at=now(),
    )

    assert done is not None and done.state == DeployState.SUCCEEDED and done.revision == 2
    assert await store.get_lock("fraud", "prod") is None
    # a second final transition does not happen, and releases nothing
    other = lock_for(d, holder="U2")
    assert (await store.acquire_lock(other))[0]
    again = await store.deployments.finish(
        d.id, only_if=[DeployState.RUNNING], holder="U2", state=DeployState.FAILED
    )
    assert again is None
    assert await store.get_lock("fraud", "prod") == other
    found = await store.deployments.get(d.id)
    assert found is not None and found.state == DeployState.SUCCEEDED


async def test_finishing_releases_only_the_lock_the_deploy_holds(store: Store) -> None:
    d = await store.deployments.create(a_deploy())
    theirs = lock_for(d, holder="U0BOB")
    await store.acquire_lock(theirs)

    done = await store.deployments.finish(
        d.id, only_if=[DeployState.RUNNING], holder=f"deploy #{d.id}", state=DeployState.FAILED
    )

    assert done is not None and done.state == DeployState.FAILED
    assert await store.get_lock("fraud", "prod") == theirs


async def test_no_final_state_and_no_release_while_an_ecspresso_group_is_recorded(
    store: Store,
) -> None:
    d = await store.deployments.create(a_deploy())
    mine = lock_for(d)
    await store.acquire_lock(mine)
    entered = await store.deployments.enter(d.id, "ecspresso", ecspresso_run=True)
    assert entered is not None and entered.step == "ecspresso" and entered.ecspresso_runs == 1
    await store.deployments.record_process(d.id, 4242, "boot:123")
    assert [x.id for x in await store.deployments.with_process()] == [d.id]

    refused = await store.deployments.finish(
        d.id, only_if=[DeployState.RUNNING], holder=f"deploy #{d.id}", state=DeployState.FAILED
    )

    assert refused is None
    assert await store.get_lock("fraud", "prod") == mine
    await store.deployments.clear_process(d.id)
    assert await store.deployments.with_process() == []
    done = await store.deployments.finish(
        d.id, only_if=[DeployState.RUNNING], holder=f"deploy #{d.id}", state=DeployState.FAILED
    )
    assert done is not None and done.step is None and done.ecspresso_runs == 1
    assert await store.get_lock("fraud", "prod") is None


async def test_a_step_is_entered_only_while_the_deploy_runs(store: Store) -> None:
    d = await store.deployments.create(a_deploy(state=DeployState.QUEUED))
    assert await store.deployments.enter(d.id, "ecspresso", ecspresso_run=True) is None
    await store.deployments.update(d.id, state=DeployState.RUNNING)
    for _ in range(2):
        await store.deployments.enter(d.id, "ecspresso", ecspresso_run=True)
    verifying = await store.deployments.enter(d.id, "verifying")
    assert verifying is not None and verifying.step == "verifying"
    assert verifying.ecspresso_runs == 2


async def test_a_request_records_one_deploy_and_is_answered_once(store: Store) -> None:
    first = await store.deployments.create(replace(a_deploy(), request="trigger:1.2"))

    again = await store.deployments.create(replace(a_deploy("stg"), request="trigger:1.2"))
    other = await store.deployments.create(replace(a_deploy(), request="trigger:3.4"))

    assert again.id == first.id and again.env == "prod"
    assert other.id != first.id
    assert await store.deployments.by_request("trigger:1.2") == first
    assert await store.deployments.by_request("trigger:9.9") is None
    assert [await store.deployments.mark_replied(first.id) for _ in range(2)] == [True, False]
    assert await store.deployments.mark_replied(other.id)


async def test_a_writer_whose_deploy_was_taken_over_writes_nothing(store: Store) -> None:
    queued = await store.deployments.create(a_deploy(state=DeployState.QUEUED))
    mine = await store.deployments.take(
        queued.id, only_if=[DeployState.QUEUED], attempt=0, state=DeployState.RUNNING
    )
    assert mine is not None and mine.attempt == 1
    assert await store.deployments.take(queued.id, only_if=[DeployState.QUEUED], attempt=0) is None
    await store.acquire_lock(lock_for(mine))

    resumed = await store.deployments.take(mine.id, only_if=[DeployState.RUNNING], attempt=1)

    assert resumed is not None and resumed.attempt == 2
    stale = dict(attempt=mine.attempt)
    assert await store.deployments.enter(mine.id, "verifying", **stale) is None
    assert await store.deployments.update(mine.id, detail="stale", **stale) is None
    failed = await store.deployments.finish(
        mine.id,
        only_if=[DeployState.RUNNING],
        holder=f"deploy #{mine.id}",
        state=DeployState.FAILED,
        **stale,
    )
    assert failed is None
    held = await store.get_lock("fraud", "prod")
    assert held is not None and held.holder == f"deploy #{mine.id}"
    done = await store.deployments.finish(
        mine.id,
        only_if=[DeployState.RUNNING],
        holder=f"deploy #{mine.id}",
        attempt=resumed.attempt,
        state=DeployState.SUCCEEDED,
    )
    assert done is not None and done.state == DeployState.SUCCEEDED
    assert await store.get_lock("fraud", "prod") is None


A = RunnerLease("replica-a", 30.0)
B = RunnerLease("replica-b", 30.0)
RUNNING = [DeployState.RUNNING]


async def test_a_deploy_whose_runner_lease_is_live_is_not_taken_over(store: Store) -> None:
    queued = await store.deployments.create(a_deploy(state=DeployState.QUEUED))
    mine = await store.deployments.take(
        queued.id, only_if=[DeployState.QUEUED], attempt=0, lease=A, state=DeployState.RUNNING
    )
    assert mine is not None and mine.attempt == 1
    runner, until = await store.deployments.runner_of(mine.id)
    assert runner == "replica-a" and until is not None and until > now() + timedelta(seconds=20)

    assert await store.deployments.take(mine.id, only_if=RUNNING, attempt=1, lease=B) is None
    assert await store.deployments.unowned(DeployState.RUNNING) == []
    again = await store.deployments.take(mine.id, only_if=RUNNING, attempt=1, lease=A)
    assert again is not None and again.attempt == 2  # its own runner may take it again
    assert (await store.deployments.runner_of(mine.id))[0] == "replica-a"


async def test_a_lapsed_lease_lets_another_replica_take_the_deploy_and_keeps_it(
    store: Store,
) -> None:
    d = await store.deployments.create(a_deploy(state=DeployState.QUEUED))
    short = RunnerLease("replica-a", 0.3)
    mine = await store.deployments.take(
        d.id, only_if=[DeployState.QUEUED], attempt=0, lease=short, state=DeployState.RUNNING
    )
    assert mine is not None
    assert await store.deployments.renew_runs(short, [d.id]) == {d.id}
    await asyncio.sleep(0.5)  # replica-a died: nothing renews its lease

    assert [x.id for x in await store.deployments.unowned(DeployState.RUNNING)] == [d.id]
    theirs = await store.deployments.take(d.id, only_if=RUNNING, attempt=1, lease=B)

    assert theirs is not None and theirs.attempt == 2
    assert (await store.deployments.runner_of(d.id))[0] == "replica-b"
    # replica-a comes back from its stall: it renews nothing, and learns it lost the deploy
    assert await store.deployments.renew_runs(short, [d.id]) == set()
    assert await store.deployments.renew_runs(B, [d.id]) == {d.id}
    assert await store.deployments.unowned(DeployState.RUNNING) == []


async def test_handed_back_deploys_are_unowned_at_once_and_finished_ones_not_renewed(
    store: Store,
) -> None:
    ids = []
    for env in ("stg", "prod"):
        d = await store.deployments.create(a_deploy(env, state=DeployState.QUEUED))
        taken = await store.deployments.take(
            d.id, only_if=[DeployState.QUEUED], attempt=0, lease=A, state=DeployState.RUNNING
        )
        assert taken is not None
        ids.append(d.id)
    other = await store.deployments.create(a_deploy("dev", state=DeployState.QUEUED))
    assert await store.deployments.take(
        other.id, only_if=[DeployState.QUEUED], attempt=0, lease=B, state=DeployState.RUNNING
    )
    await store.deployments.finish(
        ids[0], only_if=RUNNING, holder=f"deploy #{ids[0]}", state=DeployState.SUCCEEDED
    )
    assert await store.deployments.renew_runs(A, ids) == {ids[1]}

    assert await store.deployments.hand_back("replica-a") == 1  # a stopping replica
    assert [x.id for x in await store.deployments.unowned(DeployState.RUNNING)] == [ids[1]]
    assert await store.deployments.runner_of(ids[1]) == (None, None)
    assert await store.deployments.hand_back(None) == 1  # a lone replica starting: all of them
    assert (await store.deployments.runner_of(other.id)) == (None, None)
    assert (await store.deployments.runner_of(ids[0]))[0] == "replica-a"  # who ran it


async def test_a_runner_renews_what_it_runs_and_stops_a_deploy_taken_from_it(
    store: Store,
) -> None:
    d = await store.deployments.create(a_deploy(state=DeployState.QUEUED))
    short = RunnerLease("replica-a", 0.4)
    own = Ownership(store.deployments, short, every=0.1)
    taken = await store.deployments.take(
        d.id, only_if=[DeployState.QUEUED], attempt=0, lease=short, state=DeployState.RUNNING
    )
    assert taken is not None
    work = asyncio.create_task(asyncio.Event().wait())  # stands for the deploy's task
    own.hold(taken, work)
    own.start()
    await asyncio.sleep(0.8)  # twice the lease: renewed all along
    assert await store.deployments.take(d.id, only_if=RUNNING, attempt=1, lease=B) is None

    await own.stop()  # stopping: handed back, so another replica takes it at once
    assert await store.deployments.runner_of(d.id) == (None, None)
    theirs = await store.deployments.take(d.id, only_if=RUNNING, attempt=1, lease=B)
    assert theirs is not None and not work.done()

    await own.renew()  # replica-a still runs it: it learns it lost the deploy and stops
    await asyncio.gather(work, return_exceptions=True)
    assert work.cancelled() and own.held == {}
    assert (await store.deployments.runner_of(d.id))[0] == "replica-b"
