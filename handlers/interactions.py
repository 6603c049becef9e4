"""Runs recorded Slack interactions: each one through bolt's listeners, several at a time.

An interaction stays ``pending`` in the store until its listener has finished, so a restart
runs whatever was acked but not finished. Any replica may run any recorded interaction: it
claims it first (the store hands each to one replica, and the claim is renewed while the
listener runs), so a replica that dies mid-way leaves it to the others once the claim lapses.
Bolt sees the stored payload as a Socket Mode request (already authenticated at the edge),
and its listeners run to the end before the interaction is marked processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.crash import crash_point
from bot.metrics import Metrics
from bot.store.inbox import Inbox, InboxItem
from bot.worker import ClaimKeeper
from handlers.outcome import INBOX_ITEM, Recorded

log = structlog.get_logger(__name__)
RETRY_POLL_SECONDS = 1.0
LIMIT_POLL_SECONDS = 0.02
BUSY_GAP_SECONDS = 1.0
"""While Slack waits on the edge, listeners start at most this often (one at a time)."""
FIRST = asyncio.FIRST_COMPLETED


class InteractionProcessor:
    def __init__(
        self,
        inbox: Inbox,
        bolt: AsyncApp,
        metrics: Metrics,
        *,
        concurrency: int = 8,
        claim_lease: float = 10.0,
        yield_to: Callable[[], bool] | None = None,
        busy_gap: float = BUSY_GAP_SECONDS,
    ) -> None:
        self.inbox = inbox
        self.bolt = bolt
        self.metrics = metrics
        self.concurrency = concurrency
        # While ``yield_to()`` is true (the edge is answering Slack) a listener starts only
        # ``busy_gap`` seconds after the last one started: every listener's steps share the
        # event loop (and the CPU) with the acks, which Slack times; the processing goes on
        # under any load, a command a second at the least. (Ten a second cost every ack of a
        # c20 burst about a fifth more CPU: bench/ack_latency.py.)
        self.yield_to = yield_to
        self.busy_gap = busy_gap
        self.last_start = 0.0  # monotonic time the newest listener started
        self.claim_lease = claim_lease
        self.running: dict[int, asyncio.Task[None]] = {}
        self._keeper = ClaimKeeper(inbox, lambda: set(self.running), claim_lease)
        self._wakeup = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._stopping = False
        self._taking = False

    def wake(self) -> None:
        self._wakeup.set()

    def busy(self) -> bool:
        """True while a recorded interaction waits to be taken or runs."""
        return bool(self.running) or self._wakeup.is_set() or self._taking

    def start(self) -> None:
        """Begin with whatever an earlier run recorded and did not finish."""
        self._stopping = False
        self._loop = asyncio.get_running_loop().create_task(self._run(), name="interactions")
        self._keeper.start()

    async def stop(self, grace: float) -> int:
        """Take nothing new; let running interactions finish for ``grace`` seconds. What is
        cancelled stays pending in the store and runs at the next start; returns how many."""
        self._stopping = True
        self._wakeup.set()
        if self._loop is not None:
            await asyncio.gather(self._loop, return_exceptions=True)
        tasks = set(self.running.values())
        if not tasks:
            await self._keeper.stop()
            return 0
        _, late = await asyncio.wait(tasks, timeout=grace)
        left = [item_id for item_id, task in self.running.items() if task in late]
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        await self._keeper.stop()
        with contextlib.suppress(Exception):
            await self.inbox.release_claims(left)  # another replica may run them at once
        return len(late)

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            self._taking = True
            try:
                started = await self._take()
            except Exception:
                log.exception("interactions_read_failed")
                started = 0
            finally:
                self._taking = False
            if not started and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETRY_POLL_SECONDS):
                        await self._wakeup.wait()

    def free(self) -> int:
        """How many more may start now: while acks are being answered, one once ``busy_gap``
        has passed since the last start (however many still run: a slow one, waiting on
        GitLab say, never holds up the rest), else none."""
        free = self.concurrency - len(self.running)
        if self.yield_to is not None and self.yield_to():
            due = time.monotonic() - self.last_start >= self.busy_gap
            free = min(free, 1 if due else 0)
        return free

    async def _take(self) -> int:
        free = self.free()
        if free <= 0:
            # a short wait: when the edge falls idle or the gap passes, the limit rises before
            # any finishes
            if self.running:
                running = set(self.running.values())
                await asyncio.wait(running, timeout=LIMIT_POLL_SECONDS, return_when=FIRST)
            else:
                await asyncio.sleep(LIMIT_POLL_SECONDS)
            return 1
        items = await self.inbox.claim(free, lease=self.claim_lease, skip=set(self.running))
        for item in items:
            task = asyncio.get_running_loop().create_task(self._process(item))
            self.running[item.id] = task
            self.last_start = time.monotonic()
            task.add_done_callback(self._forget(item.id))
        return len(items)

    def _forget(self, item_id: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self.running.pop(item_id, None)

        return forget

    async def _process(self, item: InboxItem) -> None:
        recorded = Recorded(item.id)
        try:
            payload = json.loads(item.body)
            crash_point("interaction.started", item.kind)
            response = await self.bolt.async_dispatch(
                AsyncBoltRequest(
                    body=payload,
                    mode="socket_mode",
                    headers={},
                    context={INBOX_ITEM: recorded},
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.exception("interaction_failed", key=item.key, kind=item.kind)
            self.metrics.interaction_count("failed").inc()
            await self.inbox.mark_failed([item.id], type(err).__name__, retry_at=None)
            return
        if response.status == 404:
            self.metrics.ignore("slack", "no listener")
            await self.inbox.mark_ignored([item.id], "no listener")
            return
        self.metrics.interaction_count("processed").inc()
        if not recorded.answered:  # a listener that answered marked it with its audit line
            await self.inbox.mark_processed([item.id])
