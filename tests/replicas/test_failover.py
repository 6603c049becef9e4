"""Three bot processes on one PostgreSQL store: the leader dies mid-deploy, another finishes it;
a follower dies mid-deploy, the leader finishes it once its runner lease has lapsed; a live
follower's deploy stays its own when the leader dies.

The processes are the real bot (`python -m bot serve`), the outside world the crash harness's
stand-ins (Slack, GitLab, moto with ECS's scheduler played, the logged ecspresso stand-in).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from bot.sandbox.aws import MotoServer, running_moto
from bot.sandbox.crashes.flows import Driver
from bot.sandbox.crashes.invariants import check
from bot.sandbox.crashes.observe import StoreReader, ecspresso_runs
from bot.sandbox.crashes.slack import SlackSide
from bot.sandbox.crashes.trial import registrations, settle
from bot.sandbox.fixtures.deploys import Scheduler
from bot.sandbox.stand_ins import SANDBOX_AWS
from tests.replicas.cluster import Cluster, DeployRow, pid_of, running_cluster
from tests.replicas.load import rolling_restart

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("store_url", ["postgres"], indirect=True),
]
LEASE = 3.0


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    for name, value in SANDBOX_AWS.items():
        monkeypatch.setenv(name, value)
    with running_moto(ecs_running=1) as moto:
        aws = MotoServer(moto.endpoint_url)
        aws.reset()  # moto's state lives in this process: also what an earlier test left
        scheduler = Scheduler(aws.client("ecs")).start()
        try:
            yield aws
        finally:
            scheduler.stop()


async def test_killing_the_leader_mid_deploy_another_replica_finishes_it(
    store_url: str, aws: MotoServer, tmp_path: Path
) -> None:
    async with running_cluster(tmp_path, aws, store_url, lease=LEASE) as cluster:
        first, *others = cluster.replicas
        await first.process.start(crash_at="ecspresso.deploy")  # dies once ecspresso runs
        leader, term = await cluster.leader()
        assert leader is first
        for replica in others:
            await replica.process.start()
        reader = StoreReader(store_url)
        try:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                side = SlackSide(
                    cluster.world.stand_ins.slack, cluster.world.catcher, first.url, session
                )
                driver = Driver(side, reader, first.url, session)
                await driver.run(("train",))
                assert (await cluster.leader())[0] is first
                deploy = asyncio.create_task(driver.run(("stg",)))
                assert await first.process.died(timeout=30), first.process.tail()
                died = time.monotonic()
                assert [hit.split()[0] for hit in first.process.hits()] == ["ecspresso.deploy"]
                successor, new_term = await cluster.leader(after_term=term)
                took = time.monotonic() - died
                await deploy
                moving = await settle(reader, side.slack)
                assert moving == []
                view = await reader.view()
        finally:
            await reader.close()
        assert successor in others and new_term == term + 1
        assert took < LEASE + 2.0, f"the lease moved {took:.1f} s after the leader died"
        assert [state for _, state in view.deploys.values()] == ["succeeded"]
        assert view.locks == []
        runs = ecspresso_runs(cluster.world.ecspresso_log)
        # the first ecspresso dies of SIGPIPE with its bot (as the real one does); one ran to
        # its end, and ECS got one new task definition (the invariants below)
        finished = [r for r in runs if r.command == "deploy" and r.exit_code == 0]
        assert len(finished) == 1, runs
        registered = await asyncio.to_thread(registrations, cluster.world)
        broken = check(view, side, cluster.world.stand_ins.gitlab, runs, registered, [])
        assert broken == {}, broken


async def test_a_follower_killed_mid_deploy_leaves_it_to_the_leader_once_its_lease_lapses(
    store_url: str, aws: MotoServer, tmp_path: Path
) -> None:
    async with running_cluster(tmp_path, aws, store_url, lease=LEASE) as cluster:
        leader, follower, other = cluster.replicas
        await leader.process.start()
        assert (await cluster.leader())[0] is leader
        await follower.process.start(crash_at="ecspresso.deploy")  # dies once ecspresso runs
        await other.process.start()
        reader = StoreReader(store_url)
        try:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                side, driver = await drive(cluster, follower.url, reader, session)
                await driver.run(("train",))
                deploy = asyncio.create_task(driver.run(("stg",)))
                assert await follower.process.died(timeout=30), follower.process.tail()
                died = time.monotonic()
                assert [hit.split()[0] for hit in follower.process.hits()] == ["ecspresso.deploy"]
                deploy_id, row = await cluster.running_deploy()
                adopted = await adopted_by(cluster, deploy_id, leader.process.pid)
                took = time.monotonic() - died
                await deploy
                assert await settle(reader, side.slack) == []
                view = await reader.view()
        finally:
            await reader.close()
        assert (await cluster.leader())[0] is leader  # leadership never moved
        assert took < LEASE + 2.0, f"the deploy was adopted {took:.1f} s after its runner died"
        assert adopted.attempt == row.attempt + 1
        assert list(view.deploys.values()) == [("stg", "succeeded")]
        assert view.locks == []
        runs = ecspresso_runs(cluster.world.ecspresso_log)
        finished = [r for r in runs if r.command == "deploy" and r.exit_code == 0]
        assert len(finished) == 1, runs
        registered = await asyncio.to_thread(registrations, cluster.world)
        broken = check(view, side, cluster.world.stand_ins.gitlab, runs, registered, [])
        assert broken == {}, broken


async def test_a_live_followers_deploy_stays_its_own_when_the_leader_dies(
    store_url: str, aws: MotoServer, tmp_path: Path
) -> None:
    async with running_cluster(tmp_path, aws, store_url, lease=LEASE) as cluster:
        leader, follower, other = cluster.replicas
        await leader.process.start()
        assert (await cluster.leader())[0] is leader
        _, term = await cluster.leader()
        await follower.process.start()
        await other.process.start()
        reader = StoreReader(store_url)
        try:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                side, driver = await drive(cluster, follower.url, reader, session)
                await driver.run(("train",))
                cluster.slow_deploys(LEASE * 3)  # still running well after a new leader leads
                deploy = asyncio.create_task(driver.run(("stg",)))
                deploy_id, row = await cluster.running_deploy()
                assert row.runner is not None and pid_of(row.runner) == follower.process.pid
                await leader.process.kill()
                successor, new_term = await cluster.leader(after_term=term)
                during = await cluster.deploy(deploy_id)
                await deploy
                assert await settle(reader, side.slack) == []
                view = await reader.view()
                after = await cluster.deploy(deploy_id)
        finally:
            await reader.close()
        assert successor is not leader and new_term == term + 1
        assert during.state == "running" and during.attempt == row.attempt  # not taken over
        assert after.attempt == row.attempt and after.state == "succeeded"
        assert list(view.deploys.values()) == [("stg", "succeeded")]
        assert view.locks == []
        runs = ecspresso_runs(cluster.world.ecspresso_log)
        assert [(r.command, r.exit_code) for r in runs if r.command == "deploy"] == [
            ("deploy", 0)
        ], runs
        registered = await asyncio.to_thread(registrations, cluster.world)
        broken = check(view, side, cluster.world.stand_ins.gitlab, runs, registered, [])
        assert broken == {}, broken


async def drive(
    cluster: Cluster, url: str, reader: StoreReader, session: aiohttp.ClientSession
) -> tuple[SlackSide, Driver]:
    """People on Slack whose commands reach the replica at ``url`` (each replica warmed)."""
    for replica in cluster.replicas:
        if replica.process.alive:
            async with session.get(f"{replica.url}/readyz") as ready:
                assert ready.status == 200, await ready.text()
    world = cluster.world
    side = SlackSide(world.stand_ins.slack, world.catcher, url, session)
    return side, Driver(side, reader, url, session)


async def adopted_by(
    cluster: Cluster, deploy_id: int, pid: int, timeout: float = 30.0
) -> DeployRow:
    """The deploy once the replica ``pid`` has taken it (its runner lease names it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await cluster.deploy(deploy_id)
        if row.runner is not None and pid_of(row.runner) == pid:
            return row
        await asyncio.sleep(0.05)
    raise TimeoutError(f"deploy {deploy_id} was not adopted by {pid} in {timeout:g} s")


async def test_a_follower_killed_while_it_runs_a_command_leaves_it_to_another_replica(
    store_url: str, aws: MotoServer, tmp_path: Path
) -> None:
    async with running_cluster(tmp_path, aws, store_url, lease=LEASE, claim=3.0) as cluster:
        leader, follower, other = cluster.replicas
        await leader.process.start()
        assert (await cluster.leader())[0] is leader
        await follower.process.start(crash_at="interaction.started@command")
        await other.process.start()
        reader = StoreReader(store_url)
        try:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                for replica in cluster.replicas:  # as a load balancer does; warms each pool
                    async with session.get(f"{replica.url}/readyz") as ready:
                        assert ready.status == 200, await ready.text()
                world = cluster.world
                side = SlackSide(world.stand_ins.slack, world.catcher, follower.url, session)
                driver = Driver(side, reader, follower.url, session)
                # acked by the follower, which claims it at once (the others look every
                # second) and dies before its listener runs
                await driver.run(("train",))
                assert [hit.split()[0] for hit in follower.process.hits()] == [
                    "interaction.started"
                ]
                assert not follower.process.alive
                assert await settle(reader, side.slack) == []
                view = await reader.view()
        finally:
            await reader.close()
        assert list(view.runs.values()) == ["succeeded"]
        runs = ecspresso_runs(world.ecspresso_log)
        broken = check(view, side, world.stand_ins.gitlab, runs, {}, [])
        assert broken == {}, broken  # one run, one pipeline, one reply, one card per key


async def test_a_follower_killed_while_it_runs_an_approve_click_leaves_it_to_another_replica(
    store_url: str, aws: MotoServer, tmp_path: Path
) -> None:
    async with running_cluster(tmp_path, aws, store_url, lease=LEASE, claim=3.0) as cluster:
        leader, follower, other = cluster.replicas
        await leader.process.start()
        assert (await cluster.leader())[0] is leader
        # dies on the second click it takes (Carol's Approve: the one that starts the deploy),
        # acked and claimed, before its listener runs
        await follower.process.start(crash_at="interaction.started@action", crash_after=2)
        await other.process.start()
        reader = StoreReader(store_url)
        try:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                side, driver = await drive(cluster, follower.url, reader, session)
                await driver.run(("train", "stg", "prod"))
                assert [hit.split()[0] for hit in follower.process.hits()] == [
                    "interaction.started"
                ]
                assert not follower.process.alive
                assert await settle(reader, side.slack) == []
                view = await reader.view()
                votes = await approvals(cluster)
        finally:
            await reader.close()
        assert sorted(view.deploys.values()) == [("prod", "succeeded"), ("stg", "succeeded")]
        prod = next(i for i, (env, _) in view.deploys.items() if env == "prod")
        assert votes == [(prod, "U0BOB"), (prod, "U0CAROL")]  # each click counted once
        assert view.locks == []
        runs = ecspresso_runs(cluster.world.ecspresso_log)
        assert [r.exit_code for r in runs if r.command == "deploy"] == [0, 0], runs
        registered = await asyncio.to_thread(registrations, cluster.world)
        broken = check(view, side, cluster.world.stand_ins.gitlab, runs, registered, [])
        assert broken == {}, broken  # one reply per click, one card per key


async def approvals(cluster: Cluster) -> list[tuple[int, str]]:
    query = sa.text('SELECT deploy_id, "user" FROM approval_votes WHERE approve ORDER BY 1, 2')
    async with cluster.engine.connect() as conn:
        return [(int(r[0]), str(r[1])) for r in (await conn.execute(query)).all()]


async def test_a_rolling_restart_under_load_acks_everything_and_acts_once(
    store_url: str, aws: MotoServer, tmp_path: Path
) -> None:
    async with running_cluster(tmp_path, aws, store_url, lease=LEASE) as cluster:
        for replica in cluster.replicas:
            await replica.process.start()
        restarted = await rolling_restart(cluster, store_url, commands=100, webhooks=200)
    assert restarted.commands == 100 and restarted.webhooks == 200
    assert restarted.command_acks_failed == 0 and restarted.webhook_acks_failed == 0
    assert restarted.commands_never_answered == 0
    assert restarted.commands_answered_twice == 0
    assert restarted.webhooks_not_processed == 0
    assert restarted.duplicate_cards == []
