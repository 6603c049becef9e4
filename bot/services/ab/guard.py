"""The A/B guard: one loop for every active experiment, driven by what the store says (so a
restarted bot resumes it). Each round it expires weight prompts, follows the experiments'
deploys, and, while B has traffic, reads CloudWatch at each environment's interval; after N
breaches in a row it puts all traffic on A, turns the card red and mentions the requester.
A failed read is retried by the AWS client, then shown on the card (never taken as healthy)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from bot.clock import Clock, utcnow
from bot.config.ab import AbConfig
from bot.config.settings import Settings
from bot.domain.ab import AbState, Experiment
from bot.domain.access import AuditEvent, Outcome
from bot.errors import BotError, ExternalError
from bot.ports import CloudMetrics
from bot.services.ab.commands import AbExperiments
from bot.services.ab.follow import AbFollow
from bot.services.ab.readings import breached, judge, queries
from bot.store import Store
from bot.views.blocks import user

log = structlog.get_logger(__name__)
WATCHED = (AbState.RUNNING, AbState.PROMOTING)
MAX_TICK = 1.0


class AbGuard:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        experiments: AbExperiments,
        metrics: CloudMetrics | None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.experiments = experiments
        self.weights = experiments.weights
        self.follow = AbFollow(store, experiments.weights, clock)
        self.cards = experiments.cards
        self.metrics = metrics
        self.clock = clock
        intervals = [
            env.ab.guard.interval_seconds
            for m in settings.models.values()
            for env in m.environments.values()
            if env.ab is not None
        ]
        self.tick = min([MAX_TICK, *intervals])

    async def run(self) -> None:
        while True:
            await self.round()
            await asyncio.sleep(self.tick)

    async def round(self) -> None:
        try:
            await self.experiments.approvals.expire_due()
        except Exception:
            log.exception("ab_expiry_failed")
        for e in await self.store.ab.active():
            try:
                await self.follow.advance(e)
                fresh = await self.store.ab.get(e.id)
                if fresh is not None and self.due(fresh):
                    await self.check(fresh)
            except Exception:
                log.exception("ab_guard_failed", experiment=e.id)

    def config(self, e: Experiment) -> AbConfig:
        return self.cards.config(e.model, e.env)

    def due(self, e: Experiment) -> bool:
        if e.state not in WATCHED:
            return False
        interval = timedelta(seconds=self.config(e).guard.interval_seconds)
        return e.checked_at is None or self.clock() - e.checked_at >= interval

    async def check(self, e: Experiment) -> None:
        """One reading: weights from ELBv2, then (while B has traffic) CloudWatch for both."""
        ab = self.config(e)
        try:
            e = await self.weights.refresh(e)
            if e.b_share == 0:
                await self.store.ab.update(e.id, checked_at=self.clock(), breaches=0)
                return
            values = await self.read(ab)
        except BotError as exc:
            await self.blind(e, ab, str(exc))
            return
        readings = judge(ab.guard, values)
        count = e.breaches + 1 if any(r.breached for r in readings) else 0
        e = await self.store.ab.update(
            e.id, readings=readings, breaches=count, failures=0, checked_at=self.clock(),
            guard_error=None,
        ) or e  # fmt: skip
        log.info("ab_guard_reading", experiment=e.id, breaches=count)
        if count >= ab.guard.consecutive_breaches:
            await self.trip(e, f"{count} breaches in a row: {breached(readings)}")
        else:
            await self.cards.show(e)

    async def read(self, ab: AbConfig) -> dict[str, float | None]:
        if self.metrics is None:
            raise ExternalError("CloudWatch is not configured for this bot (aws settings).")
        return await self.metrics.read(queries(ab), seconds=ab.guard.window_seconds)

    async def blind(self, e: Experiment, ab: AbConfig, error: str) -> None:
        """A read failed after the client's retries: say so on the card (and once to the
        requester); after ``abort_when_blind`` failures in a row, abort."""
        failures = e.failures + 1
        first = e.guard_error is None
        e = await self.store.ab.update(
            e.id, failures=failures, checked_at=self.clock(),
            guard_error=f"the guard cannot read its metrics: {error}",
        ) or e  # fmt: skip
        log.warning("ab_guard_blind", experiment=e.id, failures=failures, error=error)
        await self.cards.show(e)
        if first:
            await self.cards.thread(
                e,
                f":warning: {user(e.requester)} the A/B guard of {e.model}/{e.env} cannot read "
                f"its metrics ({error}); it tries again every {ab.guard.interval_seconds:g}s.",
            )
        if ab.guard.abort_when_blind and failures >= ab.guard.abort_when_blind:
            await self.trip(e, f"the guard could not read its metrics {failures} times in a row")

    async def audit(self, e: Experiment, reason: str) -> None:
        """The guard's abort in the audit log, as the bot's own action."""
        event = AuditEvent(
            actor="guard",
            action="ab.guard_abort",
            target=f"{e.model}/{e.env}",
            outcome=Outcome.OK,
            correlation_id=f"ab-{e.id}",
            at=self.clock(),
            model=e.model,
            parameters={"experiment": e.id, "breaches": e.breaches},
            detail=reason[:900],
        )
        try:
            await self.store.record_audit(event)
        except Exception:
            log.exception("audit_write_failed", action=event.action)

    async def trip(self, e: Experiment, reason: str) -> None:
        """All traffic to A; if ELBv2 refuses, the card says so and the next round tries again."""
        try:
            ended = await self.weights.all_to_a(e, "guard", "guard", AbState.ABORTED, reason)
        except BotError as exc:
            log.error("ab_guard_abort_failed", experiment=e.id, error=str(exc))
            failed = await self.store.ab.update(
                e.id, guard_error=f"the guard could not put all traffic on A: {exc}"
            )
            await self.cards.show(failed or e)
            return
        if ended is None:
            return
        await self.experiments.close_deploy(e)
        log.warning("ab_guard_tripped", experiment=e.id, reason=reason)
        await self.audit(e, reason)
        await self.cards.announce(
            e.model,
            f":red_circle: {user(e.requester)} the guard aborted A/B #{e.id} on "
            f"*{e.model}/{e.env}*: {reason}. All traffic is on A "
            f"(ELBv2 weights {ended.weight_a}/{ended.weight_b}).",
        )
