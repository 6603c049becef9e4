"""Follows the deploys an A/B experiment waits for: B's deploy (then B gets its share), and
the promotion to A (then all traffic goes to A). Called by the guard's loop each round, from
what the store says, so it resumes after a restart."""

from __future__ import annotations

from bot.clock import Clock, utcnow
from bot.domain.ab import AbState, ChangeState, Experiment
from bot.domain.deploys import Deployment, DeployState
from bot.errors import BotError
from bot.services.ab.traffic import AbTraffic
from bot.store import Store
from bot.views.blocks import user


class AbFollow:
    def __init__(self, store: Store, weights: AbTraffic, clock: Clock = utcnow) -> None:
        self.store = store
        self.weights = weights
        self.cards = weights.cards
        self.clock = clock

    async def advance(self, e: Experiment) -> None:
        if e.deploy_id is None or e.state not in (AbState.DEPLOYING, AbState.PROMOTING):
            return
        d = await self.store.deployments.get(e.deploy_id)
        if d is None or not d.state.finished:
            return
        if e.state == AbState.DEPLOYING:
            await self.deployed_b(e, d)
        else:
            await self.promoted(e, d)

    async def deployed_b(self, e: Experiment, d: Deployment) -> None:
        if d.state != DeployState.SUCCEEDED:
            detail = f"B's deploy #{d.id} {d.state}" + (f": {d.detail}" if d.detail else "")
            ended = await self.store.ab.update(
                e.id, only_if=[AbState.DEPLOYING], state=AbState.FAILED,
                finished_at=self.clock(), detail=detail,
            )  # fmt: skip
            if ended is not None:
                await self.weights.note(
                    ended, f"deploy #{d.id}", "deploy", state=ChangeState.FAILED, detail=detail
                )
                await self.cards.show(ended)
            return
        running = await self.store.ab.update(
            e.id, only_if=[AbState.DEPLOYING], state=AbState.RUNNING, deploy_id=None,
            image_b=d.image_tag, digest_b=d.digest,
        )  # fmt: skip
        if running is None:
            return
        detail = f"B runs `{d.image_tag}` (revision {d.revision}), verified on ECS"
        await self.weights.note(running, f"deploy #{d.id}", "deploy", detail=detail)
        try:
            await self.weights.request(running, running.weight, running.requester, "start")
        except BotError as exc:
            await self.cards.thread(
                running, f"{user(running.requester)} B could not get traffic: {exc}"
            )

    async def promoted(self, e: Experiment, d: Deployment) -> None:
        if d.state != DeployState.SUCCEEDED:
            back = await self.store.ab.update(
                e.id, only_if=[AbState.PROMOTING], state=AbState.RUNNING, deploy_id=None
            )
            if back is not None:
                detail = f"deploy #{d.id} to A {d.state}; the split stays as it is"
                await self.weights.note(
                    back, f"deploy #{d.id}", "promote", state=ChangeState.FAILED, detail=detail
                )
                await self.cards.show(back)
            return
        detail = f"A runs B's image `{d.image_tag}` (deploy #{d.id}); all traffic on A"
        try:
            ended = await self.weights.all_to_a(
                e,
                d.requester,
                "promoted",
                AbState.PROMOTED,
                detail,
                run_a=e.run_b,
                image_a=d.image_tag,
            )
        except BotError as exc:
            fixed = await self.store.ab.update(
                e.id, guard_error=f"could not put all traffic on A: {exc}"
            )
            await self.cards.show(fixed or e)
            return
        if ended is not None:
            await self.cards.announce(
                e.model,
                f":white_check_mark: A/B #{e.id} on *{e.model}/{e.env}* promoted: {detail}.",
            )
