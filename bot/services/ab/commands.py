"""/deploy <model> ab <env>: start, set, promote, abort, status. B's image and the promotion
to A go through the ordinary deploy flow (approvals, lock, verification, rollback); the
experiment follows those deploys and moves the traffic once they succeeded."""

from __future__ import annotations

from bot.clock import Clock, utcnow
from bot.config.ab import AbConfig
from bot.config.settings import Settings
from bot.domain.ab import AbState, Experiment
from bot.domain.deploys import Deployment, DeployState
from bot.errors import BotError, Conflict
from bot.intents import AbCommand, DeployStart
from bot.policy import Action
from bot.ports import Services, ServiceState
from bot.services.ab.approvals import AbApprovals
from bot.services.ab.traffic import AbTraffic, check_share
from bot.services.access import Access
from bot.services.deploys.requests import Deploys
from bot.store import Store
from bot.views.ab import AbReport, split_summary
from bot.views.blocks import user


class AbExperiments:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        access: Access,
        deploys: Deploys,
        weights: AbTraffic,
        approvals: AbApprovals,
        services: Services | None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.deploys = deploys
        self.weights = weights
        self.approvals = approvals
        self.cards = weights.cards
        self.services = services
        self.clock = clock

    async def current(self, intent: AbCommand, *states: AbState) -> Experiment:
        """The environment's active experiment, which must be in one of ``states``."""
        found = await self.store.ab.active(intent.model, intent.env)
        where = f"{intent.model}/{intent.env}"
        if not found:
            raise Conflict(f"no A/B experiment runs on {where}; start one with `ab start`.")
        e = found[0]
        if e.state not in states:
            waiting = f" (deploy #{e.deploy_id})" if e.deploy_id else ""
            raise Conflict(f"A/B #{e.id} on {where} is {e.state}{waiting}; wait for it first.")
        return e

    async def may_change(self, actor: str, intent: AbCommand) -> AbConfig:
        """The env's A/B setup, if ``actor`` may change its split now: the deployer role, and
        neither someone else's lock on the environment nor a freeze (abort ignores both)."""
        ab = self.cards.config(intent.model, intent.env)
        await self.access.check(actor, Action.AB_CHANGE, intent.model, intent.env)
        lock = await self.store.get_lock(intent.model, intent.env)
        if lock is not None and lock.holder != actor:
            where = f"{intent.model}/{intent.env}"
            raise Conflict(f"{where} is locked by {user(lock.holder)}: {lock.reason}.")
        freeze = await self.store.get_freeze()
        if freeze is not None:
            raise Conflict(f"deploys are frozen by {user(freeze.holder)}: {freeze.reason}.")
        return ab

    async def start(self, actor: str, intent: AbCommand, request: str | None = None) -> Experiment:
        """Deploy the run's image to B; the weight follows once that deploy succeeded.
        ``request`` (the Slack delivery's key): a replayed start finds what its first pass began."""
        ab = await self.may_change(actor, intent)
        if (earlier := await self.begun_by(request, intent)) is not None:
            return earlier[0]
        weight = ab.default_weight if intent.weight is None else intent.weight
        check_share(weight)
        running = await self.store.ab.active(intent.model, intent.env)
        if running:
            raise Conflict(
                f"{intent.model}/{intent.env} already has A/B #{running[0].id} "
                f"({running[0].state}); promote or abort it first."
            )
        to_b = DeployStart(intent.model, ab.b_env, run=intent.run)
        d = await self.deploys.request(actor, to_b, request)
        run_a, image_a = await self.serving(intent.model, intent.env)
        e = await self.store.ab.create(
            Experiment(
                0, intent.model, intent.env, ab.b_env, AbState.DEPLOYING, actor, self.clock(),
                weight=weight, run_b=d.run_id, image_b=d.image_tag, digest_b=d.digest,
                run_a=run_a, image_a=image_a, deploy_id=d.id,
            )
        )  # fmt: skip
        detail = f"run #{d.run_id} to B ({ab.b_env}) as deploy #{d.id}, then B at {weight}%"
        await self.weights.note(e, actor, "start", detail=detail)
        await self.show_with_weights(e)
        return e

    async def begun_by(
        self, request: str | None, intent: AbCommand
    ) -> tuple[Experiment, Deployment] | None:
        """The experiment and deploy a first pass of the same Slack delivery recorded, if any."""
        if request is None:
            return None
        d = await self.store.deployments.by_request(request)
        if d is None:
            return None
        for e in await self.store.ab.active(intent.model, intent.env):
            if e.deploy_id == d.id:
                return e, d
        return None

    async def serving(self, model: str, env: str) -> tuple[int | None, str]:
        """What A runs: the run and image of its last good deploy, else what ECS says."""
        last = await self.store.deployments.last_good(model, env)
        if last is not None and last.digest:
            return last.run_id, last.image_tag
        state = await self.ecs(model, env)
        return None, state.images[0] if state and state.images else "unknown"

    async def ecs(self, model: str, env: str) -> ServiceState | None:
        config = self.settings.models[model].environments[env]
        if self.services is None or not config.cluster or not config.service:
            return None
        return await self.services.state(config.cluster, config.service)

    async def show_with_weights(self, e: Experiment) -> None:
        try:
            e = await self.weights.refresh(e)
        except BotError as exc:
            e = await self.store.ab.update(e.id, guard_error=f"ELBv2: {exc}") or e
        await self.cards.show(e)

    async def set(self, actor: str, intent: AbCommand) -> str:
        await self.may_change(actor, intent)
        assert intent.weight is not None
        check_share(intent.weight)
        e = await self.current(intent, AbState.RUNNING, AbState.PROMOTING)
        return await self.weights.request(e, intent.weight, actor)

    async def promote(
        self, actor: str, intent: AbCommand, request: str | None = None
    ) -> Deployment:
        """Deploy B's image to A (the ordinary flow); all traffic returns to A after it."""
        await self.may_change(actor, intent)
        if (earlier := await self.begun_by(request, intent)) is not None:
            return earlier[1]
        e = await self.current(intent, AbState.RUNNING)
        start = DeployStart(intent.model, intent.env, run=e.run_b, image=None)
        if e.run_b is None:
            start = DeployStart(intent.model, intent.env, image=e.image_b)
        d = await self.deploys.request(actor, start, request)
        moved = await self.store.ab.update(
            e.id, only_if=[AbState.RUNNING], state=AbState.PROMOTING, deploy_id=d.id
        )
        detail = f"B's image to A as deploy #{d.id}, then all traffic on A"
        await self.weights.note(e, actor, "promote", detail=detail)
        await self.cards.show(moved or e)
        return d

    async def abort(self, actor: str, intent: AbCommand) -> str:
        """All traffic to A at once, no approval; always announced in the model's channel."""
        self.cards.config(intent.model, intent.env)
        await self.access.check(actor, Action.AB_ABORT, intent.model, intent.env)
        where = f"{intent.model}/{intent.env}"
        found = await self.store.ab.active(intent.model, intent.env)
        if not found:
            split = await self.weights.write(intent.model, intent.env, 0)
            text = f"{user(actor)} put all traffic of *{where}* on A (weights {split.a}/{split.b})."
            await self.cards.announce(intent.model, f":leftwards_arrow_with_hook: {text}")
            return f"No A/B experiment was running; {text}"
        e = found[0]
        ended = await self.weights.all_to_a(
            e, actor, "abort", AbState.ABORTED, f"aborted by {user(actor)}"
        )
        await self.close_deploy(e)
        shown = ended or e
        text = (
            f"{user(actor)} aborted A/B #{e.id} on *{where}*: all traffic is on A "
            f"(ELBv2 weights {shown.weight_a}/{shown.weight_b})."
        )
        await self.cards.announce(e.model, f":leftwards_arrow_with_hook: {text}")
        return text

    async def close_deploy(self, e: Experiment) -> None:
        """A deploy of the experiment that still waits for approval is closed with it."""
        if e.deploy_id is None:
            return
        closed = await self.store.deployments.update(
            e.deploy_id,
            only_if=[DeployState.AWAITING_APPROVAL],
            state=DeployState.REJECTED,
            finished_at=self.clock(),
            detail=f"A/B #{e.id} was aborted",
        )
        if closed is not None:
            await self.deploys.cards.show(closed)

    async def status(self, actor: str, intent: AbCommand) -> AbReport:
        """Weights from ELBv2, images from ECS, readings from the store: each from its source."""
        ab = self.cards.config(intent.model, intent.env)
        await self.access.check(actor, Action.DEPLOY_VIEW, intent.model, intent.env)
        problems: list[str] = []
        split = a = b = None
        try:
            split = await self.weights.read(intent.model, intent.env)
        except BotError as exc:
            problems.append(f"ELBv2: {exc}")
        try:
            a = await self.ecs(intent.model, intent.env)
            b = await self.ecs(intent.model, ab.b_env)
        except BotError as exc:
            problems.append(f"ECS: {exc}")
        latest = await self.store.ab.latest(intent.model, intent.env)
        return AbReport(intent.model, intent.env, ab.b_env, split, a, b, latest, tuple(problems))

    async def split_line(self, model: str, env: str) -> str | None:
        """The split for /deploy status, as ELBv2 reports it (None: no A/B there)."""
        if self.settings.models[model].environments[env].ab is None:
            return None
        active = await self.store.ab.active(model, env)
        try:
            split = await self.weights.read(model, env)
        except BotError as exc:
            return split_summary(None, None, f"ELBv2: {exc}")
        return split_summary(split, active[0] if active else None)
