"""The leader's adoption of deploys left without a runner (real SQLite and PostgreSQL, see
conftest): a deploy whose runner's lease is live is left alone; a queued one is reopened once
it has stayed unowned for the lease; a lone replica reopens what it finds at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot.config.loading import load_settings
from bot.config.settings import Settings
from bot.domain.deploys import Deployment, DeployState
from bot.notifier import Notifier
from bot.services.cards import Cards
from bot.services.deploys.adoption import Adoption
from bot.services.deploys.cards import DeployCards
from bot.services.deploys.configs import DeployConfigs
from bot.services.deploys.diffs import COMPUTING
from bot.services.deploys.ownership import Ownership
from bot.services.deploys.runner import DeployRunner
from bot.store import Store
from bot.store.deployments import RunnerLease

LEASE = 0.3


def sandbox_settings() -> Settings:
    sample = Path(str(resources.files("bot.sandbox").joinpath("sample-config.yaml")))
    return load_settings(sample, env={})


def a_deploy(env: str, state: DeployState, diff: str | None = None) -> Deployment:
    return Deployment(
        id=0,
        model="fraud",
        env=env,
        kind="deploy",
        state=state,
        requester="U1",
        created_at=datetime.now(UTC),
        image_tag="v2",
        digest="sha256:" + "a" * 64,
        diff=diff,
    )


class Leader:
    """A replica's deploy runner (no Slack or ECS is reached here) whose reopenings are seen."""

    def __init__(self, store: Store, *, lone: bool) -> None:
        settings = sandbox_settings()
        client = AsyncWebClient(token="xoxb-unused", base_url="http://127.0.0.1:9/api/")
        cards = DeployCards(settings, store, Cards(store, Notifier(client)))
        configs = DeployConfigs(settings, None)
        self.runner = DeployRunner(settings, store, cards, None, None, configs, aws_env={})
        lease = RunnerLease("leader", LEASE)
        self.runner.own = Ownership(store.deployments, lease, every=0.1, lone=lone)
        self.runner.reopen = self.reopened
        self.adoption = Adoption(self.runner, every=0.1)
        self.opened: list[int] = []

    async def reopened(self, d: Deployment) -> Deployment:
        self.opened.append(d.id)
        return d

    async def look(self, *, first: bool = False) -> list[int]:
        """The ids reopened so far, in id order: reopenings run as concurrent tasks."""
        await self.adoption.adopt(first=first)
        await asyncio.gather(*self.runner.tasks)
        return sorted(self.opened)


async def test_a_queued_deploy_is_reopened_once_it_has_stayed_unowned_for_the_lease(
    store: Store,
) -> None:
    queued = await store.deployments.create(a_deploy("stg", DeployState.QUEUED))
    diffing = await store.deployments.create(a_deploy("dev", DeployState.QUEUED, COMPUTING))
    await store.deployments.create(a_deploy("prod", DeployState.AWAITING_APPROVAL))
    leader = Leader(store, lone=False)
    await leader.look()  # a leader's later looks: its replica may be opening it right now
    assert leader.opened == []

    await asyncio.sleep(LEASE + 0.1)
    assert await leader.look() == [queued.id]  # the diff being computed waits longer
    assert await leader.look() == [queued.id]  # once per wait, not on every look
    assert diffing.id not in leader.opened


async def test_a_new_leader_reopens_what_waits_on_its_first_look(store: Store) -> None:
    """Leadership moved because a replica died or stopped: what waits is not left to wait
    out the diff's patience (on PostgreSQL too, where other replicas may live)."""
    queued = await store.deployments.create(a_deploy("stg", DeployState.QUEUED))
    diffing = await store.deployments.create(a_deploy("dev", DeployState.QUEUED, COMPUTING))
    leader = Leader(store, lone=False)

    assert await leader.look(first=True) == [queued.id, diffing.id]


async def test_a_lone_replica_reopens_what_it_finds_on_its_first_look(store: Store) -> None:
    queued = await store.deployments.create(a_deploy("stg", DeployState.QUEUED))
    diffing = await store.deployments.create(
        a_deploy("prod", DeployState.AWAITING_APPROVAL, COMPUTING)
    )
    await store.deployments.create(a_deploy("dev", DeployState.AWAITING_APPROVAL))
    leader = Leader(store, lone=True)

    assert await leader.look(first=True) == [queued.id, diffing.id]
    assert await leader.look() == [queued.id, diffing.id]  # its own from now on: it waits


async def test_a_running_deploy_whose_runner_lease_is_live_is_left_to_its_runner(
    store: Store,
) -> None:
    d = await store.deployments.create(a_deploy("stg", DeployState.QUEUED))
    theirs = RunnerLease("follower", 30.0)
    taken = await store.deployments.take(
        d.id, only_if=[DeployState.QUEUED], attempt=0, lease=theirs, state=DeployState.RUNNING
    )
    assert taken is not None
    leader = Leader(store, lone=False)

    await leader.look(first=True)
    await leader.look()

    after = await store.deployments.get(d.id)
    assert after is not None and after.attempt == taken.attempt  # not taken over
    assert (await store.deployments.runner_of(d.id))[0] == "follower"
    assert leader.runner.tasks == set()  # nothing resumed here
