"""Durable background work: the webhook inbox, processed after the 200 and resumed on restart.

One worker per replica. It claims pending deliveries in arrival order, in batches (the store
keeps replicas from claiming the same ones; the claims are renewed while they are worked on),
and hands each batch to a processor; a delivery is marked processed only after its effect is
out (the card's state stored, its Slack post or edit sent), so a crash at any point leaves it
pending and the next start (or another replica) processes it again, which the processor
makes harmless. It sleeps until a new delivery wakes it, a retry falls due, or it is time to
prune.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from bot.clock import Clock, utcnow
from bot.crash import crash_point
from bot.metrics import Metrics
from bot.store.inbox import BatchResult, Inbox, InboxItem

log = structlog.get_logger(__name__)
Settle = Callable[[], Awaitable[None]]
MIN_IDLE = 0.05  # seconds; an idle worker never spins


class Processor(Protocol):
    async def process(self, items: Sequence[InboxItem]) -> BatchResult: ...

    async def housekeeping(self, now: datetime) -> None: ...


class ClaimKeeper:
    """Renews this replica's claims on the rows it works on, three times per lease."""

    def __init__(self, inbox: Inbox, held: Callable[[], Collection[int]], lease: float) -> None:
        self.inbox = inbox
        self.held = held
        self.lease = lease
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="claim-keeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.inbox.renew_claims(set(self.held()), lease=self.lease)
            except Exception:
                log.exception("claims_renew_failed", count=len(self.held()))


class Worker:
    def __init__(
        self,
        inbox: Inbox,
        processor: Processor,
        *,
        settle: Settle,
        retention: timedelta,
        batch_size: int = 500,
        pace: float = 0.25,
        max_attempts: int = 8,
        prune_every: float = 600.0,
        max_unsettled: int = 5000,
        claim_lease: float = 10.0,
        clock: Clock = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        self.inbox = inbox
        self.processor = processor
        self.settle = settle
        self.retention = retention
        self.batch_size = batch_size
        self.pace = pace
        self.max_attempts = max_attempts
        self.prune_every = prune_every
        self.max_unsettled = max_unsettled
        self.claim_lease = claim_lease
        self.clock = clock
        self.metrics = metrics
        self._wakeup = asyncio.Event()
        self._unsettled: set[int] = set()  # effect sent, not yet marked processed
        self._working: set[int] = set()  # claimed, being processed
        self._keeper = ClaimKeeper(inbox, self._held, claim_lease)
        self._settled = asyncio.Condition()
        self._runner: asyncio.Task[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._stopping = False
        self._closing = False
        self._next_prune = 0.0

    def wake(self) -> None:
        """A new delivery is stored: look now (cheap; call it for every delivery)."""
        self._wakeup.set()

    def start(self) -> None:
        """Start processing, beginning with whatever an earlier run left pending."""
        loop = asyncio.get_running_loop()
        self._stopping = self._closing = False
        self._runner = loop.create_task(self._run(), name="inbox-worker")
        self._committer = loop.create_task(self._mark_settled(), name="inbox-committer")
        self._keeper = ClaimKeeper(self.inbox, self._held, self.claim_lease)
        self._keeper.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the batch in hand, then mark what has settled; each step gets ``grace`` s."""
        self._stopping = True
        self._wakeup.set()
        await _finish(self._runner, grace)
        self._closing = True
        async with self._settled:
            self._settled.notify_all()
        await _finish(self._committer, grace)
        self._runner = self._committer = None
        await self._keeper.stop()
        left = self._held()
        with contextlib.suppress(Exception):
            await self.inbox.release_claims(left)  # another replica may take them at once

    def _held(self) -> set[int]:
        """The rows this worker has claimed and not yet marked."""
        return self._working | self._unsettled

    async def run_once(self) -> int:
        """Process one batch of what is due now; how many deliveries it held."""
        items = await self.inbox.claim(
            self.batch_size, lease=self.claim_lease, skip=self._unsettled
        )
        if not items:
            return 0
        self._working = {item.id for item in items}
        try:
            result = await self.processor.process(items)
        except Exception as err:
            log.exception("inbox_batch_failed", size=len(items))
            result = BatchResult(failed={item.id: type(err).__name__ for item in items})
        try:
            await self._record(items, result)
            answered = set(result.done) | set(result.ignored) | set(result.failed)
            await self.inbox.release_claims(self._working - answered)
        finally:
            self._working = set()
        return len(items)

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()  # before looking, so that no wake-up between is lost
            handled = 0
            try:
                await self._housekeeping()
                handled = await self.run_once()
                wait = 0.0 if handled else await self._idle_seconds()
            except Exception:
                log.exception("inbox_worker_error")
                wait = 1.0
            if wait > 0 and not self._stopping:
                await self._sleep(wait)
            elif handled and not self._stopping:
                # in a burst, let deliveries gather: bigger batches, fewer writes and edits
                await asyncio.sleep(self.pace)
            while len(self._unsettled) > self.max_unsettled and not self._stopping:
                await self._sleep(0.1)  # let the committer catch up before taking more

    async def _record(self, items: Sequence[InboxItem], result: BatchResult) -> None:
        if result.ignored:
            self._count("ignored", len(result.ignored))
            for reason in set(result.ignored.values()):
                ids = [i for i, r in result.ignored.items() if r == reason]
                await self.inbox.mark_ignored(ids, reason)
        attempts = {item.id: item.attempts for item in items}
        keys = {item.id: item.key for item in items}
        failures: dict[tuple[int, str], list[int]] = {}
        for item_id, error in result.failed.items():
            failures.setdefault((attempts[item_id], error), []).append(item_id)
        for (tries, error), ids in failures.items():
            retry_at = self._retry_at(tries)
            if retry_at is None:
                self._count("failed", len(ids))
                log.error(
                    "inbox_delivery_gave_up",
                    keys=[keys[i] for i in ids],
                    attempts=tries + 1,
                    error=error,
                )
            else:
                self._count("retried", len(ids))
            await self.inbox.mark_failed(ids, error, retry_at=retry_at)
        if result.done:
            self._count("processed", len(result.done))
            self._unsettled.update(result.done)
            async with self._settled:
                self._settled.notify_all()

    def _count(self, outcome: str, n: int) -> None:
        if self.metrics is not None:
            self.metrics.deliveries.labels(outcome=outcome).inc(n)

    def _retry_at(self, attempts: int) -> datetime | None:
        if attempts + 1 >= self.max_attempts:
            return None
        return self.clock() + timedelta(seconds=min(300.0, 2.0 ** (attempts + 1)))

    async def _mark_settled(self) -> None:
        """Mark deliveries processed once the Slack edits they caused have been sent."""
        while True:
            async with self._settled:
                await self._settled.wait_for(lambda: bool(self._unsettled) or self._closing)
            if not self._unsettled:
                return
            await self._commit(set(self._unsettled))

    async def _commit(self, ids: set[int]) -> None:
        try:
            await self.settle()
            crash_point("webhook.handled")
            await self.inbox.mark_processed(ids)
        except Exception:
            log.exception("inbox_commit_failed", count=len(ids))
            await asyncio.sleep(1.0)
            return
        self._unsettled -= ids

    async def _housekeeping(self) -> None:
        now = asyncio.get_running_loop().time()
        if now < self._next_prune:
            return
        self._next_prune = now + self.prune_every
        pruned = await self.inbox.prune(self.clock() - self.retention)
        await self.processor.housekeeping(self.clock())
        if pruned:
            log.info("inbox_pruned", rows=pruned)

    async def _idle_seconds(self) -> float:
        """Until the next retry falls due or the next prune, whichever is first."""
        loop_now = asyncio.get_running_loop().time()
        wait = max(0.0, self._next_prune - loop_now)
        due = await self.inbox.next_due(skip=self._unsettled)
        if due is not None:
            wait = min(wait, (due - self.clock()).total_seconds())
        return max(wait, MIN_IDLE)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()


async def _finish(task: asyncio.Task[None] | None, grace: float) -> None:
    if task is None:
        return
    _, late = await asyncio.wait({task}, timeout=grace)
    for pending in late:
        pending.cancel()
    await asyncio.gather(task, return_exceptions=True)
