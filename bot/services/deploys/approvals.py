"""Approval prompts: votes by button or reaction, withdrawal, rejection, expiry; the deploy
starts exactly once when enough distinct approvers (never the requester) said yes."""

from __future__ import annotations

import asyncio
from typing import NoReturn

import structlog

from bot.clock import Clock, utcnow
from bot.config.settings import Settings
from bot.domain.deploys import ApprovalVote, Deployment, DeployState
from bot.errors import Conflict, NotAllowed, NotFound
from bot.policy import Action
from bot.services.access import Access
from bot.services.deploys.cards import DeployCards, deploy_id_of
from bot.services.deploys.runner import DeployRunner
from bot.store import Store
from bot.views.blocks import user, when

log = structlog.get_logger(__name__)
AWAITING = [DeployState.AWAITING_APPROVAL]


class Approvals:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        access: Access,
        cards: DeployCards,
        runner: DeployRunner,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.cards = cards
        self.runner = runner
        self.clock = clock

    def out_of_time(self, d: Deployment) -> bool:
        """The prompt's time ran out, whether or not the expiry loop has closed it yet (the
        loop runs every 15 s; ``expires_at`` is the truth)."""
        if d.state == DeployState.EXPIRED:
            return True
        due = d.expires_at is not None and d.expires_at <= self.clock()
        return d.state == DeployState.AWAITING_APPROVAL and due

    async def refuse_late(self, d: Deployment) -> NoReturn:
        """Close a prompt whose time ran out (if still open) and say so to the late voter."""
        if d.state == DeployState.AWAITING_APPROVAL:
            await self.expire(d)
        at = f" at {when(d.expires_at)}" if d.expires_at else ""
        raise Conflict(
            f"The approval of deploy #{d.id} ({d.model} → {d.env}) expired{at}; your vote was "
            f"not counted. Ask for a new deploy: `/deploy {d.model} {d.env}`."
        )

    async def open_deploy(self, deploy_id: int) -> Deployment:
        d = await self.store.deployments.get(deploy_id)
        if d is None:
            raise NotFound(f"there is no deploy #{deploy_id}.")
        if self.out_of_time(d):
            await self.refuse_late(d)
        if d.state != DeployState.AWAITING_APPROVAL:
            raise Conflict(f"deploy #{d.id} is {d.state}; its approval is closed.")
        return d

    async def check_voter(self, actor: str, d: Deployment) -> None:
        if actor == d.requester:
            raise NotAllowed(
                f"{user(actor)} requested deploy #{d.id}; another approver has to decide."
            )
        try:
            await self.access.check(actor, Action.DEPLOY_APPROVE, d.model, d.env)
        except NotAllowed:
            raise NotAllowed(f"{user(actor)} is not an approver for {d.env}.") from None

    async def vote(self, actor: str, deploy_id: int, *, approve: bool, via: str) -> str:
        """Record a vote; the reply for the voter says what it did."""
        d = await self.open_deploy(deploy_id)
        await self.check_voter(actor, d)
        await self.store.deployments.vote(ApprovalVote(d.id, actor, approve, via, self.clock()))
        after = await self.tally(d.id)
        needed = self.settings.models[d.model].environments[d.env].approvals
        return vote_reply(d, after, approve=approve, needed=needed)

    async def withdraw(self, actor: str, deploy_id: int, *, approve: bool) -> None:
        """A removed reaction takes its vote back, while the prompt is open."""
        d = await self.store.deployments.get(deploy_id)
        if d is None or d.state != DeployState.AWAITING_APPROVAL or self.out_of_time(d):
            return
        if await self.store.deployments.withdraw(deploy_id, actor, approve=approve):
            await self.tally(deploy_id)

    async def tally(self, deploy_id: int) -> Deployment:
        """Count distinct votes; one transition out of awaiting wins (and starts the deploy)."""
        d = await self.store.deployments.get(deploy_id)
        assert d is not None
        env = self.settings.models[d.model].environments[d.env]
        rejecters = [u for u in d.rejecters if u != d.requester]
        approvers = [u for u in d.approvers if u != d.requester]
        moved: Deployment | None = None
        if len(rejecters) >= env.rejections:
            moved = await self.store.deployments.update(
                d.id,
                only_if=AWAITING,
                state=DeployState.REJECTED,
                finished_at=self.clock(),
                detail="",  # the card names the rejecters (live mentions) from the votes
            )
        elif len(approvers) >= self.cards.needed(d):
            moved = await self.store.deployments.update(
                d.id, only_if=AWAITING, state=DeployState.QUEUED, detail="approved"
            )
            if moved is not None:
                log.info("deploy_approved", deploy=d.id, approvers=approvers)
                self.runner.start(moved)
        current = moved or await self.store.deployments.get(d.id) or d
        await self.cards.show(current)
        return current

    async def reaction(
        self, actor: str, channel: str, ts: str, emoji: str, *, added: bool
    ) -> str | None:
        """An emoji on a deploy card: the env's approve or reject emoji count as votes."""
        card = await self.store.card_at(channel, ts)
        deploy_id = deploy_id_of(card.key) if card else None
        d = await self.store.deployments.get(deploy_id) if deploy_id else None
        if d is None:
            return None
        env = self.settings.models[d.model].environments[d.env]
        if emoji not in (env.approve_emoji, env.reject_emoji):
            if not added or d.state != DeployState.AWAITING_APPROVAL:
                return None
            return (
                f":{emoji}: is not a vote on deploy #{d.id}: approve with "
                f":{env.approve_emoji}: or reject with :{env.reject_emoji}: (or the buttons)."
            )
        approve = emoji == env.approve_emoji
        if not added:
            await self.withdraw(actor, d.id, approve=approve)
            return None
        return await self.vote(actor, d.id, approve=approve, via="reaction")

    async def expire(self, d: Deployment) -> bool:
        """Close one prompt as expired (once, however many callers race) and show it."""
        minutes = self.settings.models[d.model].environments[d.env].approval_minutes
        done = await self.store.deployments.update(
            d.id,
            only_if=AWAITING,
            state=DeployState.EXPIRED,
            finished_at=self.clock(),
            detail=f"the approval expired after {minutes:g} minutes",
        )
        if done is not None:
            await self.cards.show(done)
        return done is not None

    async def expire_due(self) -> int:
        count = 0
        for d in await self.store.deployments.expired(self.clock()):
            count += await self.expire(d)
        return count

    async def expiry_loop(self, every: float = 15.0) -> None:
        """Closes prompts whose time ran out, also those opened before a restart."""
        while True:
            await self.expire_due()
            await asyncio.sleep(every)


def vote_reply(d: Deployment, after: Deployment, *, approve: bool, needed: int) -> str:
    """What the voter is told: their vote, and what the deploy does now."""
    what = f"deploy #{d.id} ({d.model} → {d.env})"
    if not approve:
        ending = "it will not run" if after.state == DeployState.REJECTED else "noted"
        return f"You rejected {what}; {ending}."
    if after.state == DeployState.AWAITING_APPROVAL:
        missing = max(needed - len(after.approvers), 0)
        return (
            f"You approved {what}: {len(after.approvers)} of {needed} approvals; "
            f"it waits for {missing} more."
        )
    if after.state in (DeployState.QUEUED, DeployState.RUNNING):
        return f"You approved {what}: approvals complete, it is starting."
    return f"You approved {what}; it is {after.state}."
