"""Runs an approved deploy: lock, ecspresso, verification against ECS, automatic rollback."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import structlog

from bot.clock import Clock, utcnow
from bot.config.models import EnvironmentConfig
from bot.config.settings import Settings
from bot.domain.deploys import Deployment, DeployState, Lock
from bot.errors import BotError
from bot.ports import Deployer, Services, ServiceState
from bot.services.deploys.cards import DeployCards
from bot.services.deploys.configs import DeployConfigs
from bot.store import Store
from bot.views.blocks import Message, user
from bot.views.deploys import output_message

log = structlog.get_logger(__name__)
SETTLE_POLL_SECONDS = 1.0


class Failed(Exception):
    """The deploy did not reach its target; ``touched`` says whether ECS may have changed."""

    def __init__(self, reason: str, *, touched: bool) -> None:
        super().__init__(reason)
        self.touched = touched


@dataclass
class Output:
    """ecspresso's lines, shown in one thread reply that is edited as they come (coalesced)."""

    cards: DeployCards
    deployment: Deployment
    where: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        self.lines: list[str] = []

    async def open(self) -> None:
        self.where = await self.cards.thread(self.deployment, output_message([]))

    def add(self, line: str) -> None:
        self.lines.append(line.rstrip())
        if self.where is not None:
            self.cards.edit(self.where, output_message(self.lines))


class DeployRunner:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        cards: DeployCards,
        deployer: Deployer | None,
        services: Services | None,
        configs: DeployConfigs,
        *,
        aws_env: Mapping[str, str],
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.cards = cards
        self.deployer = deployer
        self.services = services
        self.configs = configs
        self.aws_env = dict(aws_env)
        self.clock = clock
        self.tasks: set[asyncio.Task[None]] = set()

    def env(self, d: Deployment) -> EnvironmentConfig:
        return self.settings.models[d.model].environments[d.env]

    def start(self, d: Deployment) -> None:
        """Run the deploy in the background (the caller has already answered the user)."""
        task = asyncio.create_task(self.execute(d.id), name=f"deploy-{d.id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, grace: float) -> None:
        if self.tasks:
            _, late = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in late:
                task.cancel()

    async def execute(self, deploy_id: int) -> None:
        d = await self.store.deployments.update(
            deploy_id,
            only_if=[DeployState.QUEUED],
            state=DeployState.RUNNING,
            started_at=self.clock(),
            detail="ecspresso deploy running; output in the thread",
        )
        if d is None:
            return
        await self.cards.show(d)
        holder = f"deploy #{d.id}"
        try:
            await self.take_lock(d, holder)
            await self.run(d)
        except Failed as failure:
            await self.fail(d, failure)
        except BotError as exc:
            await self.fail(d, Failed(str(exc), touched=False))
        except Exception as exc:
            log.exception("deploy_crashed", deploy=d.id)
            await self.fail(d, Failed(f"the bot failed: {type(exc).__name__}", touched=True))
        finally:
            await self.store.release_lock(d.model, d.env, holder=holder)

    async def take_lock(self, d: Deployment, holder: str) -> None:
        expires = self.clock() + timedelta(minutes=self.env(d).lock_minutes)
        lock = Lock(d.model, d.env, holder, f"{d.kind} in progress", self.clock(), expires)
        taken, current = await self.store.acquire_lock(lock)
        if not taken and not d.force_reason:
            raise Failed(
                f"{d.model}/{d.env} is locked by {user(current.holder)}: {current.reason}",
                touched=False,
            )
        frozen = await self.store.get_freeze()
        if frozen is not None and not d.force_reason:
            raise Failed(
                f"deploys are frozen by {user(frozen.holder)}: {frozen.reason}", touched=False
            )

    def ecspresso_env(self, d: Deployment) -> dict[str, str]:
        repository = self.settings.models[d.model].deploy.image_repository or ""
        values = {
            **self.aws_env,
            "IMAGE_TAG": d.image_tag,
            "IMAGE_DIGEST": d.digest,
            "IMAGE_REPOSITORY": repository,
            "MLOPS_DEPLOY_ID": str(d.id),
        }
        return values | dict(self.env(d).variables)

    async def run(self, d: Deployment) -> None:
        if self.deployer is None:
            raise Failed("ecspresso is not configured", touched=False)
        before = await self.current(d)
        if before is not None:
            await self.store.deployments.update(d.id, previous_revision=before.revision)
        async with self.configs.checkout(d.model, d.env, d.sha) as config:
            output = Output(self.cards, d)
            await output.open()
            target = d.revision if d.kind == "rollback" else None
            result = await self.deployer.deploy(
                str(config), self.ecspresso_env(d), output.add, revision=target
            )
            if not result.ok:
                reason = (
                    f"ecspresso timed out after {self.settings.ecspresso.timeout_seconds:g}s"
                    if result.timed_out
                    else f"ecspresso exited with {result.exit_code}"
                )
                raise Failed(await self.recover(d, config, before, reason), touched=False)
            try:
                state = await self.verify(d)
            except BotError as exc:
                raise Failed(f"could not verify on ECS: {exc}", touched=True) from None
            await self.succeed(d, state)

    async def current(self, d: Deployment) -> ServiceState | None:
        env = self.env(d)
        if self.services is None or not env.cluster or not env.service:
            return None
        return await self.services.state(env.cluster, env.service)

    async def settled(self, d: Deployment) -> ServiceState:
        """Follow ECS until the primary deployment's rollout ends (or the wait runs out)."""
        deadline = asyncio.get_running_loop().time() + self.settings.ecspresso.verify_seconds
        while True:
            state = await self.current(d)
            if state is None:
                raise Failed("no ECS cluster/service configured to verify against", touched=True)
            if state.rollout_state != "IN_PROGRESS" and state.deployments <= 1:
                return state
            if asyncio.get_running_loop().time() > deadline:
                raise Failed(f"the rollout did not settle ({state.rollout_state})", touched=True)
            await asyncio.sleep(SETTLE_POLL_SECONDS)

    async def verify(self, d: Deployment) -> ServiceState:
        """ECS itself must run the requested digest with a completed rollout."""
        state = await self.settled(d)
        if state.rollout_state != "COMPLETED":
            raise Failed(f"the rollout ended {state.rollout_state}", touched=True)
        digests = await self.services.image_digests(state.images) if self.services else ()
        if d.digest and d.digest not in digests:
            shown = ", ".join(x[:19] for x in digests if x) or "an unknown image"
            raise Failed(
                f"ECS runs {shown} (revision {state.revision}), not the requested {d.digest[:19]}",
                touched=True,
            )
        if d.kind == "rollback" and d.revision is not None and state.revision != d.revision:
            raise Failed(f"ECS runs revision {state.revision}, not {d.revision}", touched=True)
        return state

    async def succeed(self, d: Deployment, state: ServiceState) -> None:
        done = await self.store.deployments.update(
            d.id,
            only_if=[DeployState.RUNNING],
            state=DeployState.SUCCEEDED,
            revision=state.revision,
            finished_at=self.clock(),
            detail="",
        )
        if done is not None:
            await self.cards.show(done)

    async def recover(
        self, d: Deployment, config: Path, before: ServiceState | None, reason: str
    ) -> str:
        """Roll back to the last good revision (task definitions stay registered); the reason
        with what the rollback did."""
        target = await self.good_revision(d, before)
        if target is None or self.deployer is None:
            return f"{reason}; no earlier good revision to roll back to"
        result = await self.deployer.deploy(
            str(config), self.ecspresso_env(d), lambda _: None, revision=target
        )
        if not result.ok:
            return f"{reason}; the rollback to revision {target} failed too"
        return f"{reason}; rolled back to revision {target}"

    async def good_revision(self, d: Deployment, before: ServiceState | None) -> int | None:
        """The last good deploy's revision there, else what ran before this deploy."""
        last = await self.store.deployments.last_good(d.model, d.env, before=d.id)
        if last is not None and last.revision is not None:
            return last.revision
        if before is not None:
            return before.revision
        fresh = await self.store.deployments.get(d.id)
        return fresh.previous_revision if fresh is not None else None

    async def fail(self, d: Deployment, failure: Failed) -> None:
        reason = str(failure)
        if failure.touched:
            reason = await self.recover_anew(d, reason)
        done = await self.store.deployments.update(
            d.id,
            only_if=[DeployState.RUNNING, DeployState.QUEUED],
            state=DeployState.FAILED,
            finished_at=self.clock(),
            detail=reason[:900],
        )
        if done is None:
            return
        log.warning("deploy_failed", deploy=d.id, reason=reason)
        await self.cards.show(done)
        await self.cards.thread(
            done,
            Message(
                text=f"{user(d.requester)} {d.kind} #{d.id} to {d.model}/{d.env} failed: {reason}"
            ),
        )

    async def recover_anew(self, d: Deployment, reason: str) -> str:
        """Roll back when the failure came after ecspresso (verification, a crash)."""
        try:
            async with self.configs.checkout(d.model, d.env, d.sha) as config:
                return await self.recover(d, config, None, reason)
        except BotError as exc:
            return f"{reason}; no rollback possible: {exc}"

    async def reattach(self) -> None:
        """After a restart: follow deploys that were running until ECS settles; start queued."""
        for d in await self.store.deployments.in_states(DeployState.RUNNING):
            task = asyncio.create_task(self.follow(d), name=f"reattach-{d.id}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        for d in await self.store.deployments.in_states(DeployState.QUEUED):
            self.start(d)

    async def follow(self, d: Deployment) -> None:
        holder = f"deploy #{d.id}"
        try:
            await self.succeed(d, await self.verify(d))
        except Failed as failure:
            await self.fail(d, failure)
        finally:
            await self.store.release_lock(d.model, d.env, holder=holder)
