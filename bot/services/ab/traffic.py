"""B's share of the traffic: read from and written to ELBv2 (what ELBv2 reports afterwards is
what the bot shows), one change at a time per environment, each one in the experiment's
history; a raise above the configured share waits for approvers (bot.services.ab.approvals)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta
from typing import Any

from bot.clock import Clock, utcnow
from bot.config.settings import Settings
from bot.domain.ab import AbChange, AbState, ChangeState, Experiment
from bot.errors import BotError, Conflict, ExternalError, UserInputError
from bot.ports import Split, Traffic, TrafficRoute
from bot.services.ab.cards import AbCards
from bot.store import Store

AWAITING = [ChangeState.AWAITING_APPROVAL]
LIVE = [AbState.RUNNING, AbState.PROMOTING]


def check_share(weight: int) -> None:
    if not 0 <= weight <= 100:
        raise UserInputError(f"B's share must be 0 to 100 percent, not {weight}.")


class AbTraffic:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        cards: AbCards,
        traffic: Traffic | None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.cards = cards
        self.traffic = traffic
        self.clock = clock
        self.locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    def lock(self, e: Experiment) -> asyncio.Lock:
        """Serialises everything that writes weights for one environment (commands, guard)."""
        return self.locks[(e.model, e.env)]

    def route(self, model: str, env: str) -> TrafficRoute:
        ab = self.cards.config(model, env)
        return TrafficRoute(ab.target_group_a, ab.target_group_b, ab.listener_arn, ab.rule_arn)

    def elbv2(self) -> Traffic:
        if self.traffic is None:
            raise ExternalError("ELBv2 is not configured for this bot (aws settings).")
        return self.traffic

    async def read(self, model: str, env: str) -> Split:
        return await self.elbv2().split(self.route(model, env))

    async def write(self, model: str, env: str, weight: int) -> Split:
        """B gets ``weight`` percent, A the rest; the answer is what ELBv2 reports after."""
        check_share(weight)
        return await self.elbv2().set_split(self.route(model, env), 100 - weight, weight)

    async def refresh(self, e: Experiment) -> Experiment:
        """The experiment with the weights ELBv2 reports now."""
        split = await self.read(e.model, e.env)
        return await self.store.ab.update(e.id, weight_a=split.a, weight_b=split.b) or e

    async def note(self, e: Experiment, actor: str, action: str, **values: Any) -> AbChange:
        change = AbChange(0, e.id, self.clock(), actor, action, **values)
        return await self.store.ab.add_change(change)

    # -- changing B's share ---------------------------------------------------------------

    async def request(self, e: Experiment, weight: int, actor: str, action: str = "set") -> str:
        """Move B to ``weight`` now, or open an approval when the environment's rule says so."""
        check_share(weight)
        ab = self.cards.config(e.model, e.env)
        e = await self.refresh(e)
        await self.close_pending(e)
        if not ab.needs_approval(e.b_share, weight):
            done = await self.apply(e.id, weight, actor, action)
            return f"B now gets {done.b_share}% of *{e.model}/{e.env}* (as ELBv2 reports it)."
        env = self.settings.models[e.model].environments[e.env]
        expires = self.clock() + timedelta(minutes=env.approval_minutes)
        await self.note(
            e,
            actor,
            action,
            state=ChangeState.AWAITING_APPROVAL,
            weight_from=e.b_share,
            weight_to=weight,
            expires_at=expires,
        )
        await self.cards.show(e)
        return (
            f"Moving B of *{e.model}/{e.env}* from {e.b_share}% to {weight}% needs "
            f"{ab.approvals} approval(s) (above {ab.approvals_above}%); the prompt is on the "
            "A/B card."
        )

    async def apply(
        self, experiment_id: int, weight: int, actor: str, action: str, change: int | None = None
    ) -> Experiment:
        """Write the weights; the history line (``change`` if given) says what ELBv2 reports."""
        e = await self.store.ab.get(experiment_id)
        assert e is not None
        async with self.lock(e):
            e = await self.store.ab.get(experiment_id) or e
            if e.state not in LIVE:
                raise Conflict(f"A/B #{e.id} is {e.state}; its traffic stays as it is.")
            before = e.b_share
            try:
                split = await self.write(e.model, e.env, weight)
            except BotError as exc:
                await self.record(
                    e, actor, action, change, ChangeState.FAILED, before, weight, str(exc)
                )
                await self.cards.show(e)
                raise
            e = await self.store.ab.update(e.id, weight_a=split.a, weight_b=split.b) or e
            await self.record(e, actor, action, change, ChangeState.DONE, before, e.b_share, "")
        await self.cards.show(e)
        return e

    async def record(
        self,
        e: Experiment,
        actor: str,
        action: str,
        change: int | None,
        state: ChangeState,
        before: int,
        after: int,
        detail: str,
    ) -> None:
        values: dict[str, Any] = {
            "state": state,
            "weight_from": before,
            "weight_to": after,
            "detail": detail,
        }
        if change is None:
            await self.note(e, actor, action, **values)
        else:
            await self.store.ab.update_change(change, **values)

    async def all_to_a(
        self,
        e: Experiment,
        actor: str,
        action: str,
        state: AbState,
        detail: str,
        **changes: Any,
    ) -> Experiment | None:
        """Every request to A at once and the experiment ended as ``state`` (None when it had
        already ended), with ``changes`` in the same write (a promotion's new A); raises,
        changing nothing, when ELBv2 refuses."""
        async with self.lock(e):
            current = await self.store.ab.get(e.id)
            if current is None or not current.state.active:
                return None
            before = current.b_share
            split = await self.write(e.model, e.env, 0)
            ended = await self.store.ab.update(
                e.id,
                only_if=[current.state],
                state=state,
                weight_a=split.a,
                weight_b=split.b,
                finished_at=self.clock(),
                detail=detail,
                guard_error=None,
                **changes,
            )
            if ended is None:
                return None
            await self.close_pending(ended)
            await self.note(
                ended, actor, action, weight_from=before, weight_to=ended.b_share, detail=detail
            )
        await self.cards.show(ended)
        return ended

    async def close_pending(self, e: Experiment) -> None:
        """A newer change (or the end of the experiment) replaces a waiting one."""
        pending = await self.store.ab.pending(e.id)
        if pending is not None:
            await self.store.ab.update_change(
                pending.id, only_if=AWAITING, state=ChangeState.REPLACED
            )
