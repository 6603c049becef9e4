"""Approvals of raises of B's share, with the deploy approvals' mechanics: votes by button
or by the environment's emoji on the A/B card, distinct approvers of the environment, never
the one who asked; rejections and expiry close the prompt; one transition moves the traffic."""

from __future__ import annotations

from typing import NoReturn

import structlog

from bot.clock import Clock, utcnow
from bot.config.settings import Settings
from bot.domain.ab import AbChange, ChangeState, Experiment
from bot.errors import BotError, Conflict, NotAllowed, NotFound
from bot.policy import Action
from bot.services.ab.cards import experiment_id_of
from bot.services.ab.traffic import AWAITING, AbTraffic
from bot.services.access import Access
from bot.store import Store
from bot.views.blocks import user, when

log = structlog.get_logger(__name__)


class AbApprovals:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        access: Access,
        weights: AbTraffic,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.weights = weights
        self.cards = weights.cards
        self.clock = clock

    async def vote(self, actor: str, change_id: int, *, approve: bool, via: str) -> str:
        change = await self.store.ab.change(change_id)
        if change is None:
            raise NotFound(f"there is no A/B change #{change_id}.")
        e = await self.store.ab.get(change.experiment_id)
        assert e is not None
        if self.out_of_time(change):
            await self.refuse_late(e, change)
        if change.state != ChangeState.AWAITING_APPROVAL:
            raise Conflict(
                f"moving B to {change.weight_to}% is {change.state}; its approval is closed."
            )
        if actor == change.actor:
            raise NotAllowed(
                f"{user(actor)} asked for this change; another approver has to decide."
            )
        try:
            await self.access.check(actor, Action.DEPLOY_APPROVE, e.model, e.env)
        except NotAllowed:
            raise NotAllowed(f"{user(actor)} is not an approver for {e.env}.") from None
        await self.store.ab.vote(change.id, actor, approve=approve, via=via, at=self.clock())
        after = await self.tally(change.id)
        verb = "approved" if approve else "rejected"
        return (
            f"You {verb} moving B of {e.model}/{e.env} to {change.weight_to}%; it is {after.state}."
        )

    def out_of_time(self, change: AbChange) -> bool:
        """The prompt's time ran out, whether or not the expiry loop has closed it yet."""
        if change.state == ChangeState.EXPIRED:
            return True
        due = change.expires_at is not None and change.expires_at <= self.clock()
        return change.state == ChangeState.AWAITING_APPROVAL and due

    async def refuse_late(self, e: Experiment, change: AbChange) -> NoReturn:
        """Close a raise whose time ran out (if still open) and say so to the late voter."""
        if change.state == ChangeState.AWAITING_APPROVAL:
            await self.expire(change)
        at = f" at {when(change.expires_at)}" if change.expires_at else ""
        raise Conflict(
            f"The approval of moving B of {e.model}/{e.env} to {change.weight_to}% expired{at}; "
            f"your vote was not counted. Ask again: `/deploy {e.model} ab {e.env} set "
            f"{change.weight_to}`."
        )

    async def tally(self, change_id: int) -> AbChange:
        """Count distinct votes; one transition out of awaiting wins (and moves the traffic)."""
        change = await self.store.ab.change(change_id)
        assert change is not None
        e = await self.store.ab.get(change.experiment_id)
        assert e is not None
        env = self.settings.models[e.model].environments[e.env]
        rejecters = [u for u in change.rejecters if u != change.actor]
        approvers = [u for u in change.approvers if u != change.actor]
        if len(rejecters) >= env.rejections:
            await self.store.ab.update_change(  # the card names the rejecters from the votes
                change.id, only_if=AWAITING, state=ChangeState.REJECTED, detail=""
            )
        elif len(approvers) >= self.cards.config(e.model, e.env).approvals:
            moved = await self.store.ab.update_change(
                change.id, only_if=AWAITING, state=ChangeState.DONE, detail="approved"
            )
            if moved is not None and change.weight_to is not None:
                log.info("ab_change_approved", change=change.id, approvers=approvers)
                await self.apply_approved(e, change)
        await self.cards.show(await self.store.ab.get(e.id) or e)
        return await self.store.ab.change(change.id) or change

    async def apply_approved(self, e: Experiment, change: AbChange) -> None:
        assert change.weight_to is not None
        try:
            await self.weights.apply(e.id, change.weight_to, change.actor, change.action, change.id)
        except BotError as exc:
            await self.store.ab.update_change(change.id, state=ChangeState.FAILED, detail=str(exc))

    async def reaction(
        self, actor: str, channel: str, ts: str, emoji: str, *, added: bool
    ) -> str | None:
        """An emoji on an A/B card with a waiting change: the env's emoji count as votes."""
        card = await self.store.card_at(channel, ts)
        experiment_id = experiment_id_of(card.key) if card else None
        change = await self.store.ab.pending(experiment_id) if experiment_id else None
        e = await self.store.ab.get(experiment_id) if experiment_id else None
        if e is None:
            return None
        if change is None:  # perhaps a raise the expiry loop has just closed
            history = await self.store.ab.history(e.id)
            change = history[-1] if history else None
            if change is None or change.state != ChangeState.EXPIRED or not added:
                return None
        env = self.settings.models[e.model].environments[e.env]
        if emoji not in (env.approve_emoji, env.reject_emoji):
            return None
        approve = emoji == env.approve_emoji
        if not added:
            if self.out_of_time(change):
                return None
            if await self.store.ab.withdraw(change.id, actor, approve=approve):
                await self.tally(change.id)
            return None
        return await self.vote(actor, change.id, approve=approve, via="reaction")

    async def expire(self, change: AbChange) -> None:
        """Close one raise as expired (once, however many callers race) and show it."""
        done = await self.store.ab.update_change(
            change.id,
            only_if=AWAITING,
            state=ChangeState.EXPIRED,
            detail="nobody decided in time",
        )
        e = await self.store.ab.get(change.experiment_id)
        if done is not None and e is not None:
            await self.cards.show(e)

    async def expire_due(self) -> None:
        for change in await self.store.ab.expired(self.clock()):
            await self.expire(change)
