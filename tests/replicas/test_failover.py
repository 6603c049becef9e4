"""Three bot processes on one PostgreSQL store: the leader dies mid-deploy, another finishes it.

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

from bot.sandbox.aws import MotoServer, running_moto
from bot.sandbox.crashes.flows import Driver
from bot.sandbox.crashes.invariants import check
from bot.sandbox.crashes.observe import StoreReader, ecspresso_runs
from bot.sandbox.crashes.slack import SlackSide
from bot.sandbox.crashes.trial import registrations, settle
from bot.sandbox.fixtures.deploys import Scheduler
from bot.sandbox.stand_ins import SANDBOX_AWS
from tests.replicas.cluster import running_cluster
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
