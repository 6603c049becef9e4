"""/deploy requests: resolve the image, check the gates, open the card, and start or prompt."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Protocol

from bot.clock import Clock, utcnow
from bot.config.models import EnvironmentConfig, ModelConfig
from bot.config.settings import Settings
from bot.domain.deploys import Deployment, DeployState, Lock
from bot.domain.runs import Run, RunState
from bot.errors import BotError, Conflict, ExternalError, NotFound, UserInputError
from bot.intents import DeployDiff, DeployRollback, DeployStart
from bot.policy import Action
from bot.ports import Registry, Services, ServiceState
from bot.services.access import Access
from bot.services.deploys.cards import DeployCards
from bot.services.deploys.runner import DeployRunner
from bot.store import Store
from bot.views.blocks import Message, user
from bot.views.deploys import DIFF_LINES, diff_excerpt


@dataclass(frozen=True)
class Candidate:
    image_tag: str
    digest: str
    run: Run | None


def image_tag_of(run: Run, config: ModelConfig) -> str:
    sha = run.sha or ""
    return config.deploy.image_tag.format(
        sha=sha, short_sha=sha[:8], run_id=run.id, model=run.model
    )


def before_the_bot(first: Deployment) -> Deployment:
    """What ran before ``first``: its revision is known, its image only to ECS."""
    assert first.previous_revision is not None
    return replace(
        first,
        id=first.id,
        image_tag=f"revision {first.previous_revision}",
        digest="",
        run_id=None,
        sha=None,
        ref=None,
        revision=first.previous_revision,
    )


def gate_passed(run: Run | None) -> bool:
    return run is not None and bool((run.verdict or {}).get("passed"))


class Deploys:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        access: Access,
        cards: DeployCards,
        registry: Registry | None,
        runner: DeployRunner,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.cards = cards
        self.registry = registry
        self.runner = runner
        self.clock = clock

    def model(self, name: str) -> ModelConfig:
        return self.settings.models[name]

    async def request(self, actor: str, intent: DeployStart) -> Deployment:
        """Check everything, record the deploy, show its card; run it now or prompt."""
        await self.access.check(actor, Action.DEPLOY_START, intent.model, intent.env)
        if intent.force_reason:
            await self.access.check(actor, Action.OVERRIDE, None)
        candidate = await self.candidate(intent.model, intent.run, intent.image)
        if not intent.force_reason:
            await self.check_gates(actor, intent.model, intent.env, candidate)
        diff = await self.diff_text(intent.model, intent.env, candidate)
        return await self.open(
            Deployment(
                id=0,
                model=intent.model,
                env=intent.env,
                kind="deploy",
                state=DeployState.QUEUED,
                requester=actor,
                created_at=self.clock(),
                image_tag=candidate.image_tag,
                digest=candidate.digest,
                run_id=candidate.run.id if candidate.run else None,
                sha=candidate.run.sha if candidate.run else None,
                ref=candidate.run.ref if candidate.run else None,
                force_reason=intent.force_reason,
                diff=diff,
            )
        )

    async def open(self, draft: Deployment) -> Deployment:
        env = self.model(draft.model).environments[draft.env]
        needed = env.rollback_approvals if draft.kind == "rollback" else env.approvals
        if needed > 0:
            expires = self.clock() + timedelta(minutes=env.approval_minutes)
            draft = replace(draft, state=DeployState.AWAITING_APPROVAL, expires_at=expires)
        d = await self.store.deployments.create(draft)
        await self.cards.show(d)
        if d.diff and len(d.diff.splitlines()) > DIFF_LINES:
            await self.cards.thread(d, Message(text=f"full diff\n```{d.diff[:35000]}```"))
        if d.state == DeployState.QUEUED:
            self.runner.start(d)
        return d

    async def candidate(self, model: str, run_id: int | None, image: str | None) -> Candidate:
        """The image to ship: a run's, an explicit tag, or the newest run whose gate passed."""
        config = self.model(model)
        if image is not None:
            run = await self.run_of_image(model, image)
            tag = image
        else:
            run = await self.pick_run(model, run_id)
            tag = image_tag_of(run, config)
        digest = tag if tag.startswith("sha256:") else await self.digest(config, tag)
        return Candidate(tag, digest, run)

    async def run_of_image(self, model: str, image: str) -> Run | None:
        """The run that built ``image``, when a recent run's tag is that image."""
        config = self.model(model)
        for run in await self.store.runs.recent(model, 50):
            if run.sha and image_tag_of(run, config) == image:
                return run
        return None

    async def pick_run(self, model: str, run_id: int | None) -> Run:
        if run_id is not None:
            run = await self.store.runs.get(run_id)
            if run is None or run.model != model:
                raise NotFound(f"{model} has no run #{run_id}.")
            if run.state != RunState.SUCCEEDED or not run.sha:
                raise Conflict(f"run #{run_id} {run.state}; only a succeeded run has an image.")
            return run
        for run in await self.store.runs.recent(model, 50):
            if run.state == RunState.SUCCEEDED and gate_passed(run) and run.sha:
                return run
        raise NotFound(
            f"{model} has no succeeded run whose gate passed; name one with "
            "`run=<id>` or an image with `image=<tag>`."
        )

    async def digest(self, config: ModelConfig, tag: str) -> str:
        if self.registry is None or not config.deploy.image_repository:
            raise ExternalError("ECR is not configured for this model (deploy.image_repository).")
        return await self.registry.digest(config.deploy.image_repository, tag)

    async def check_gates(self, actor: str, model: str, env: str, c: Candidate) -> None:
        """Lock, freeze, allowed refs, the required environment and the accuracy gate."""
        lock = await self.store.get_lock(model, env)
        if lock is not None and lock.holder != actor:
            raise Conflict(f"{model}/{env} is locked by {user(lock.holder)}: {lock.reason}.")
        freeze = await self.store.get_freeze()
        if freeze is not None:
            raise Conflict(f"deploys are frozen by {user(freeze.holder)}: {freeze.reason}.")
        config = self.model(model).environments[env]
        self.check_refs(env, config, c)
        if config.requires:
            await self.check_required(model, env, config, c)

    def check_refs(self, env: str, config: EnvironmentConfig, c: Candidate) -> None:
        if not config.refs:
            return
        ref = c.run.ref if c.run else None
        if ref is None or not any(fnmatch.fnmatchcase(ref, p) for p in config.refs):
            allowed = ", ".join(f"`{p}`" for p in config.refs)
            raise Conflict(
                f"{env} only takes images built from {allowed}; this one is from "
                f"`{ref or 'an unknown ref'}`."
            )

    async def check_required(
        self, model: str, env: str, config: EnvironmentConfig, c: Candidate
    ) -> None:
        assert config.requires is not None
        tested = await self.store.deployments.last_good(model, config.requires, digest=c.digest)
        if tested is None:
            raise Conflict(
                f"{env} only takes an image that succeeded on {config.requires}; "
                f"`{c.image_tag}` never did. Deploy it to {config.requires} first."
            )
        run = c.run or (await self.store.runs.get(tested.run_id) if tested.run_id else None)
        if not gate_passed(run):
            raise Conflict(f"{env} only takes images from a run whose accuracy gate passed.")

    async def diff_text(self, model: str, env: str, c: Candidate) -> str | None:
        """What the deploy would change (ecspresso diff), or None when it cannot be computed."""
        deployer = self.runner.deployer
        if deployer is None:
            return None
        draft = Deployment(
            0,
            model,
            env,
            "deploy",
            DeployState.QUEUED,
            "",
            self.clock(),
            c.image_tag,
            c.digest,
            sha=c.run.sha if c.run else None,
        )
        try:
            async with self.runner.configs.checkout(model, env, draft.sha) as config:
                return await deployer.diff(str(config), self.runner.ecspresso_env(draft))
        except Exception:
            return None

    async def diff(self, actor: str, intent: DeployDiff) -> str:
        await self.access.check(actor, Action.DEPLOY_VIEW, intent.model, intent.env)
        c = await self.candidate(intent.model, intent.run, intent.image)
        text = await self.diff_text(intent.model, intent.env, c)
        if text is None:
            raise ExternalError("ecspresso diff could not run (see the bot's logs).")
        return diff_excerpt(text)

    async def rollback(self, actor: str, intent: DeployRollback) -> Deployment:
        """Back to the previous good deploy, or to deploy ``to``: its revision, skipping the
        task definition registration."""
        await self.access.check(actor, Action.DEPLOY_ROLLBACK, intent.model, intent.env)
        target = await self.rollback_target(intent)
        d = await self.open(
            Deployment(
                id=0,
                model=intent.model,
                env=intent.env,
                kind="rollback",
                state=DeployState.QUEUED,
                requester=actor,
                created_at=self.clock(),
                image_tag=target.image_tag,
                digest=target.digest,
                run_id=target.run_id,
                sha=target.sha,
                ref=target.ref,
                revision=target.revision,
                target_deploy=target.id,
            )
        )
        what = (
            f"deploy #{target.id} (revision {target.revision})"
            if target.digest
            else f"revision {target.revision}, what ran before deploy #{target.id}"
        )
        await self.cards.announce(
            d, f":rewind: {user(actor)} rolls {d.model}/{d.env} back to {what}."
        )
        return d

    async def rollback_target(self, intent: DeployRollback) -> Deployment:
        """The deploy to restore: the one named, else the good one before the current one,
        else what ran before the bot's first recorded deploy there."""
        store = self.store.deployments
        if intent.to is not None:
            target = await store.get(intent.to)
            if target is None or (target.model, target.env) != (intent.model, intent.env):
                raise NotFound(f"{intent.model}/{intent.env} has no deploy #{intent.to}.")
        else:
            current = await store.last_good(intent.model, intent.env)
            target = (
                await store.last_good(intent.model, intent.env, before=current.id)
                if current
                else None
            )
            if target is None and current is not None and current.previous_revision:
                return before_the_bot(current)
            if target is None:
                raise NotFound(f"{intent.model}/{intent.env} has no earlier good deploy.")
        if target.state != DeployState.SUCCEEDED or target.revision is None:
            raise Conflict(
                f"deploy #{target.id} {target.state}; only a succeeded deploy can be restored."
            )
        return target

    def environment(self, model: str, env: str) -> EnvironmentConfig:
        envs = self.model(model).environments
        if env not in envs:
            raise UserInputError(f"{model} has no environment {env}.")
        return envs[env]


@dataclass(frozen=True)
class EnvReport:
    env: str
    service: ServiceState | None
    lock: Lock | None
    problem: str = ""
    split: str = ""  # the A/B split as ELBv2 reports it, where the env has one


class SplitSource(Protocol):
    async def split_line(self, model: str, env: str) -> str | None: ...


class DeployReports:
    """/deploy status and history: what runs where (asked of ECS) and what happened before."""

    def __init__(
        self, settings: Settings, store: Store, access: Access, services: Services | None
    ) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.services = services
        self.splits: SplitSource | None = None  # set by bot/app.py when A/B is wired

    async def status(self, actor: str, model: str, env: str | None) -> list[EnvReport]:
        await self.access.check(actor, Action.DEPLOY_VIEW, model, env)
        envs = self.settings.models[model].environments
        names = [env] if env else list(envs)
        return [await self.report(model, name, envs[name]) for name in names]

    async def report(self, model: str, env: str, config: EnvironmentConfig) -> EnvReport:
        found = await self.service_report(model, env, config)
        split = await self.splits.split_line(model, env) if self.splits else None
        return replace(found, split=split) if split else found

    async def service_report(self, model: str, env: str, config: EnvironmentConfig) -> EnvReport:
        lock = await self.store.get_lock(model, env)
        if self.services is None or not config.cluster or not config.service:
            return EnvReport(env, None, lock)
        try:
            state = await self.services.state(config.cluster, config.service)
        except BotError as exc:
            return EnvReport(env, None, lock, problem=str(exc))
        return EnvReport(env, state, lock)

    async def history(
        self, actor: str, model: str, env: str, limit: int = 10
    ) -> list[tuple[Deployment, Run | None]]:
        await self.access.check(actor, Action.DEPLOY_VIEW, model, env)
        rows = []
        for d in await self.store.deployments.history(model, env, limit):
            rows.append((d, await self.store.runs.get(d.run_id) if d.run_id else None))
        return rows
