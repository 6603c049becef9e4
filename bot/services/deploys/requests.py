"""/deploy requests: resolve the image, check the gates, open the card, and start or prompt.

What may be deployed: a run's image (``run=<id>``, or the newest run whose gate passed), an
image tag (``image=<tag>``) or an image digest (``image=sha256:<hex>`` or
``image=<repository>@sha256:<hex>``) of the model's ECR repository. Each faces the same gates:
the role, lock and freeze, the environment's ``refs`` and ``requires``. An image is traced back
to the run that built it (a recent run whose tag it carries in ECR, else the run an earlier
successful deploy of the same digest recorded); an image traced to no run is a *bare* image: it
has no ref and no accuracy verdict, so an environment with ``refs`` refuses it and one with
``requires`` takes it only when that digest already succeeded there with a run whose gate
passed. Admins may ``force`` past the gates as with any deploy.

``ecspresso diff`` runs only once these gates have passed (for a deploy request, and for
``/deploy <model> diff <env>``, which needs the deploy role and the same gates): the card
appears at once with "computing diff…", then shows the summary (or "diff unavailable: ...").
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Protocol

import structlog

from bot.clock import Clock, utcnow
from bot.config.models import EnvironmentConfig, ModelConfig
from bot.config.settings import Settings
from bot.crash import crash_point
from bot.domain.deploys import Deployment, DeployState, Lock
from bot.domain.paging import Page
from bot.domain.runs import Run, RunState
from bot.errors import BotError, Conflict, ExternalError, NotFound, UserInputError
from bot.intents import DeployDiff, DeployRollback, DeployStart
from bot.logs import SecretScrubber
from bot.policy import Action
from bot.ports import Registry, Services, ServiceState
from bot.services.access import Access
from bot.services.deploys import diffs
from bot.services.deploys.cards import DeployCards
from bot.services.deploys.runner import DeployRunner
from bot.store import Store
from bot.views.blocks import escape, user
from bot.views.deploys import diff_excerpt, full_diff_message

log = structlog.get_logger(__name__)
DIGEST = re.compile(r"^(?:(?P<repository>[a-z0-9][a-z0-9._/-]*)@)?(?P<digest>sha256:[0-9a-f]{64})$")
DIFF_SECONDS = 120.0
HISTORY_PAGE = 10  # deploys per page of /deploy <model> history <env>
"""The longest a diff may take (or ecspresso's own timeout, when shorter)."""
NEEDS_COMMIT = ("{sha}", "{short_sha}")


@dataclass(frozen=True)
class Candidate:
    image_tag: str  # what the card shows: the tag, or ``<repository>@sha256:...``
    digest: str
    run: Run | None


def image_tag_of(run: Run, config: ModelConfig) -> str:
    """The tag the run's pipeline pushed (``deploy.image_tag``); Conflict when the pattern
    needs the commit and the run recorded none (some Kubernetes runs)."""
    pattern = config.deploy.image_tag
    if run.sha is None and any(key in pattern for key in NEEDS_COMMIT):
        raise Conflict(
            f"run #{run.id} recorded no commit, and the image tag pattern `{pattern}` needs one; "
            "deploy its image by `image=<tag>` or `image=sha256:<digest>`."
        )
    sha = run.sha or ""
    return pattern.format(sha=sha, short_sha=sha[:8], run_id=run.id, model=run.model)


def tag_or_none(run: Run, config: ModelConfig) -> str | None:
    try:
        return image_tag_of(run, config)
    except Conflict:
        return None


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
        scrubber: SecretScrubber | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.cards = cards
        self.registry = registry
        self.runner = runner
        self.clock = clock
        self.scrubber = scrubber or SecretScrubber(settings.secrets())
        self.diffing: set[int] = set()  # deploys whose diff is being computed
        runner.reopen = self.reopen  # queued deploys found at start resume from here

    def model(self, name: str) -> ModelConfig:
        return self.settings.models[name]

    async def request(
        self, actor: str, intent: DeployStart, request: str | None = None
    ) -> Deployment:
        """Check everything, record the deploy, show its card (diff computing); then run it or
        prompt for approval. ``request`` (the Slack delivery's key) makes a replayed command
        find the deploy its first pass recorded and finish opening it."""
        return await self.reopen(await self.record(actor, intent, request))

    async def record(
        self, actor: str, intent: DeployStart, request: str | None = None
    ) -> Deployment:
        """``request`` up to the recorded deploy (or the one a replayed command recorded), so
        the command can be answered before ``reopen`` shows its card and starts it."""
        await self.access.check(actor, Action.DEPLOY_START, intent.model, intent.env)
        if request is not None and (earlier := await self.store.deployments.by_request(request)):
            return earlier
        if intent.force_reason:
            await self.access.check(actor, Action.OVERRIDE, None)
        candidate = await self.candidate(intent.model, intent.run, intent.image)
        if not intent.force_reason:
            await self.check_gates(actor, intent.model, intent.env, candidate)
        await self.runner.configs.check(intent.model, intent.env)  # trust: never forced
        differs = self.diff_enabled(intent.model, intent.env)
        return await self.create(
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
                diff=diffs.COMPUTING if differs else None,
                request=request,
            )
        )

    async def first_reply(self, d: Deployment) -> bool:
        """Whether the command that opened ``d`` is still to be answered (True once per deploy
        a Slack delivery asked for: its replay after a restart does not answer twice)."""
        return d.request is None or await self.store.deployments.mark_replied(d.id)

    def diff_enabled(self, model: str, env: str) -> bool:
        return (
            self.runner.deployer is not None and self.model(model).environments[env].diff != "off"
        )

    async def create(self, draft: Deployment) -> Deployment:
        """The deploy's row: awaiting approval when its environment asks for any."""
        env = self.model(draft.model).environments[draft.env]
        needed = env.rollback_approvals if draft.kind == "rollback" else env.approvals
        if needed > 0:
            expires = self.clock() + timedelta(minutes=env.approval_minutes)
            draft = replace(draft, state=DeployState.AWAITING_APPROVAL, expires_at=expires)
        d = await self.store.deployments.create(draft)
        crash_point("deploy.recorded", d.id)
        return d

    async def reopen(self, d: Deployment) -> Deployment:
        """What follows the deploy's recording, also after a restart cut it short (a replayed
        command, the runner's start): its card, then its diff, then its start when it needs
        no approval. Each happens once however often this is called (the card is an outbox
        entry, one diff task per deploy at a time, the start a compare-and-set)."""
        await self.cards.show(d)
        if d.diff == diffs.COMPUTING and not d.state.finished and d.id not in self.diffing:
            self.diffing.add(d.id)
            task = asyncio.create_task(self.diff_card(d), name=f"diff-{d.id}")
            self.runner.track(task)
        elif d.state == DeployState.QUEUED and d.id not in self.diffing:
            self.runner.start(d)
        return d

    async def diff_card(self, d: Deployment) -> None:
        """Compute the diff, put its summary (or why it failed) on the card, and then start a
        deploy that needs no approval (so the diff shows what the deploy is about to change).
        Cancelled (the bot stops), it starts nothing: the next start computes it again."""
        try:
            await self.show_diff(d)
        except Exception:
            log.exception("deploy_diff_crashed", deploy=d.id)
        finally:
            self.diffing.discard(d.id)
        current = await self.store.deployments.get(d.id)
        if current is not None and current.state == DeployState.QUEUED:
            self.runner.start(current)

    async def show_diff(self, d: Deployment) -> None:
        try:
            raw: str | None = await self.raw_diff(d)
        except BotError as exc:
            shown = diffs.UNAVAILABLE + self.scrubber.scrub(str(exc))
            raw = None
        else:
            shown = diffs.summary(raw or "")
        fresh = await self.store.deployments.update(d.id, diff=shown)
        if fresh is not None:
            await self.cards.show(fresh)
            full = self.model(d.model).environments[d.env].diff == "full"
            if raw and raw.strip() and full:
                await self.cards.thread(fresh, full_diff_message(self.scrubbed(d, raw)))

    async def raw_diff(self, d: Deployment) -> str:
        """``ecspresso diff`` for ``d`` with the operator's config; BotError (logged) when it
        fails or runs out of time."""
        deployer = self.runner.deployer
        if deployer is None:
            raise ExternalError("ecspresso is not configured")
        limit = min(DIFF_SECONDS, self.settings.ecspresso.timeout_seconds)
        try:
            async with asyncio.timeout(limit), self.runner.configs.checkout(d.model, d.env) as cfg:
                return await deployer.diff(str(cfg), self.diff_env(d))
        except TimeoutError:
            log.warning("deploy_diff_timed_out", deploy=d.id, seconds=limit)
            raise ExternalError(f"ecspresso diff did not finish within {limit:g} s") from None
        except BotError as exc:
            log.warning("deploy_diff_failed", deploy=d.id, reason=self.scrubber.scrub(str(exc)))
            raise

    def diff_env(self, d: Deployment) -> dict[str, str]:
        return self.runner.ecspresso_env(d)

    def scrubbed(self, d: Deployment, raw: str) -> str:
        """The diff without known secrets, the values handed to ecspresso that look secret,
        and secret-looking values in the definitions."""
        handed = self.runner.ecspresso_env(d)
        extra = [v for k, v in handed.items() if diffs.looks_secret(k) and v]
        return diffs.scrub(raw, self.scrubber, extra)

    async def candidate(self, model: str, run_id: int | None, image: str | None) -> Candidate:
        """The image to ship: a run's, an explicit tag or digest, or the newest run whose gate
        passed; a digest is checked in the model's ECR repository."""
        config = self.model(model)
        if image is None:
            picked = await self.pick_run(model, run_id)
            tag = image_tag_of(picked, config)
            return Candidate(tag, await self.digest(config, tag), picked)
        repository = self.repository(config)
        pinned = DIGEST.match(image)
        if pinned is None:
            digest = await self.digest(config, image)
            return Candidate(image, digest, await self.run_of_image(model, (image,), digest))
        named, digest = pinned.group("repository"), pinned.group("digest")
        if named is not None and named.rsplit("/", 1)[-1] != repository.rsplit("/", 1)[-1]:
            raise UserInputError(
                f"`{image}` names repository `{named}`, but {model}'s images are in "
                f"`{repository}`: give `image={repository}@{digest}` or `image={digest}`."
            )
        assert self.registry is not None
        tags = await self.registry.image_tags(repository, digest)
        run = await self.run_of_image(model, tags, digest)
        return Candidate(f"{repository}@{digest}", digest, run)

    def repository(self, config: ModelConfig) -> str:
        if self.registry is None or not config.deploy.image_repository:
            raise ExternalError("ECR is not configured for this model (deploy.image_repository).")
        return config.deploy.image_repository

    async def run_of_image(self, model: str, tags: Iterable[str], digest: str) -> Run | None:
        """The run that built the image: a recent run whose tag the image carries, else the
        run an earlier successful deploy of the same digest recorded; None for a bare image."""
        config = self.model(model)
        wanted = set(tags)
        for run in await self.store.runs.recent(model, 50):
            if tag_or_none(run, config) in wanted:
                return run
        for env in config.environments:
            earlier = await self.store.deployments.last_good(model, env, digest=digest)
            if earlier is not None and earlier.run_id is not None:
                found = await self.store.runs.get(earlier.run_id)
                if found is not None and found.model == model:
                    return found
        return None

    async def pick_run(self, model: str, run_id: int | None) -> Run:
        config = self.model(model)
        if run_id is not None:
            run = await self.store.runs.get(run_id)
            if run is None or run.model != model:
                raise NotFound(f"{model} has no run #{run_id}.")
            if run.state != RunState.SUCCEEDED:
                raise Conflict(f"run #{run_id} {run.state}; only a succeeded run has an image.")
            return run
        for run in await self.store.runs.recent(model, 50):
            ready = run.state == RunState.SUCCEEDED and gate_passed(run)
            if ready and tag_or_none(run, config) is not None:
                return run
        raise NotFound(
            f"{model} has no succeeded run whose gate passed; name one with "
            "`run=<id>` or an image with `image=<tag>` or `image=sha256:<digest>`."
        )

    async def digest(self, config: ModelConfig, tag: str) -> str:
        repository = self.repository(config)
        assert self.registry is not None
        return await self.registry.digest(repository, tag)

    async def check_gates(self, actor: str, model: str, env: str, c: Candidate) -> None:
        """Lock, freeze, allowed refs, the required environment and the accuracy gate."""
        lock = await self.store.get_lock(model, env)
        if lock is not None and lock.holder != actor:
            raise Conflict(
                f"{model}/{env} is locked by {user(lock.holder)}: {escape(lock.reason)}."
            )
        freeze = await self.store.get_freeze()
        if freeze is not None:
            raise Conflict(f"deploys are frozen by {user(freeze.holder)}: {escape(freeze.reason)}.")
        await self.check_provenance(model, env, c)

    async def check_provenance(self, model: str, env: str, c: Candidate) -> None:
        """Where the image may go given where it came from: ``refs`` and ``requires``."""
        config = self.model(model).environments[env]
        self.check_refs(env, config, c)
        if config.requires:
            await self.check_required(model, env, config, c)

    def check_refs(self, env: str, config: EnvironmentConfig, c: Candidate) -> None:
        if not config.refs:
            return
        allowed = ", ".join(f"`{p}`" for p in config.refs)
        if c.run is None:
            raise Conflict(
                f"{env} only takes images built from {allowed}; `{c.image_tag}` was built by no "
                "run the bot recorded (no recent run's tag is on it in ECR and no earlier deploy "
                "of its digest names a run), so its ref is unknown. Deploy a run with "
                '`run=<id>`, or ask an admin to `force reason="..."`.'
            )
        ref = c.run.ref
        if not any(fnmatch.fnmatchcase(ref, p) for p in config.refs):
            raise Conflict(
                f"{env} only takes images built from {allowed}; this one is from `{ref}`."
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

    async def diff(self, actor: str, intent: DeployDiff) -> str:
        """``/deploy <model> diff <env>``: gated as a deploy request by ``actor`` would be (the
        deploy role, ``refs``, ``requires``), since the diff renders the operator's config with
        the bot's AWS identity; the summary, plus the scrubbed diff where the env allows it."""
        env = self.environment(intent.model, intent.env)
        await self.access.check(actor, Action.DEPLOY_START, intent.model, intent.env)
        if env.diff == "off":
            raise UserInputError(
                f"{intent.model}/{intent.env} does not show diffs (`diff: off` in its settings)."
            )
        c = await self.candidate(intent.model, intent.run, intent.image)
        await self.check_provenance(intent.model, intent.env, c)
        await self.runner.configs.check(intent.model, intent.env)
        draft = Deployment(
            0,
            intent.model,
            intent.env,
            "deploy",
            DeployState.QUEUED,
            actor,
            self.clock(),
            c.image_tag,
            c.digest,
            run_id=c.run.id if c.run else None,
        )
        try:
            raw = await self.raw_diff(draft)
        except BotError as exc:
            raise ExternalError(diffs.UNAVAILABLE + self.scrubber.scrub(str(exc))) from None
        text = f"`{c.image_tag}`: {diffs.summary(raw)}"
        if env.diff == "full" and raw.strip():
            text += "\n" + diff_excerpt(self.scrubbed(draft, raw).replace("```", "'''"))
        return text

    async def reopen_rollback(self, actor: str, d: Deployment) -> Deployment:
        """What follows a rollback's recording: ``reopen``, and the channel's line about it."""
        await self.reopen(d)
        return await self.announce_rollback(actor, d)

    async def record_rollback(
        self, actor: str, intent: DeployRollback, request: str | None = None
    ) -> Deployment:
        """A rollback to the previous good deploy, or to deploy ``to`` (its revision, skipping
        the task definition registration), recorded; ``reopen_rollback`` does the rest.
        ``request``: as for ``record``."""
        await self.access.check(actor, Action.DEPLOY_ROLLBACK, intent.model, intent.env)
        earlier = await self.store.deployments.by_request(request) if request else None
        if earlier is not None:
            return earlier
        target = await self.rollback_target(intent)
        return await self.create(
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
                request=request,
            )
        )

    async def announce_rollback(self, actor: str, d: Deployment) -> Deployment:
        """The channel's line about a rollback (posted once: the outbox keys it by its text)."""
        what = (
            f"deploy #{d.target_deploy} (revision {d.revision})"
            if d.digest
            else f"revision {d.revision}, what ran before deploy #{d.target_deploy}"
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
        self, actor: str, model: str, env: str, page: int = 1, size: int = HISTORY_PAGE
    ) -> Page[tuple[Deployment, Run | None]]:
        """Page ``page`` of the deploys there, newest first, each with its run (one query for
        the page's runs, one for their votes: the work does not grow with the history)."""
        await self.access.check(actor, Action.DEPLOY_VIEW, model, env)
        found = await self.store.deployments.history_page(model, env, page, size)
        runs = await self.store.runs.get_many(d.run_id for d in found.items if d.run_id)
        rows = [(d, runs.get(d.run_id) if d.run_id else None) for d in found.items]
        return Page(rows, found.total, found.number, found.size)
