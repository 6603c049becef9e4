"""Makes Slack show what the store says each card should show (Slack is an outbox).

Services record a card's desired state in the store and return at once; this loop claims due
cards, posts or edits them, and keeps retrying what fails (429s honour Retry-After, 5xx and
timeouts back off with jitter) until Slack shows the latest state. A card whose message is
unknown is first looked for in the channel's recent history by the key its message metadata
carries, so a post whose answer was lost (a crash, a timeout) is adopted, never repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog

from bot.crash import crash_point
from bot.domain.cards import CardRef, CardState
from bot.errors import ExternalError
from bot.store.cards import CardStates

Blocks = list[dict[str, Any]]
EVENT_TYPE = "mlops_bot_card"
LOOKBACK_MARGIN = timedelta(minutes=5)
"""How much earlier than its desired state a card's message may be stamped (clock skew)."""

log = structlog.get_logger(__name__)


class SendFailed(ExternalError):
    """A Slack call for a card failed: ``reason`` is Slack's error code or the cause."""

    def __init__(
        self,
        method: str,
        reason: str,
        *,
        retry_after: float | None = None,
        gone: bool = False,
        permanent: bool = False,
    ) -> None:
        super().__init__(f"Slack {method} failed: {reason}")
        self.method = method
        self.reason = reason
        self.retry_after = retry_after
        self.gone = gone
        self.permanent = permanent


def card_metadata(key: str, generation: int = 1) -> dict[str, Any]:
    """The message metadata a card's message carries: how it is found again by its key."""
    payload: dict[str, Any] = {"key": key}
    if generation > 1:
        payload["generation"] = generation
    return {"event_type": EVENT_TYPE, "event_payload": payload}


def carries(message: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """True when a message from Slack's history carries ``metadata`` (same key, generation)."""
    found = message.get("metadata")
    if not isinstance(found, dict) or found.get("event_type") != metadata["event_type"]:
        return False
    payload = found.get("event_payload")
    wanted = metadata["event_payload"]
    return (
        isinstance(payload, dict)
        and payload.get("key") == wanted["key"]
        and payload.get("generation", 1) == wanted.get("generation", 1)
    )


class CardSender(Protocol):
    """The Slack calls a card needs; implemented by bot.notifier.Notifier."""

    async def post_card(
        self,
        channel: str,
        text: str,
        blocks: Blocks | None,
        *,
        metadata: dict[str, Any],
        thread_ts: str | None = None,
    ) -> tuple[str, str]: ...

    async def update_card(
        self, channel: str, ts: str, text: str, blocks: Blocks | None, *, metadata: dict[str, Any]
    ) -> None: ...

    async def find_card(
        self, channel: str, metadata: dict[str, Any], *, oldest: float, thread_ts: str | None
    ) -> tuple[str, str] | None: ...


@dataclass(frozen=True)
class Backoff:
    """``first * 2**attempts`` seconds, capped, with jitter; never sooner than Retry-After."""

    first: float = 0.5
    cap: float = 10.0
    permanent_cap: float = 300.0

    def delay(self, attempts: int, failure: SendFailed | None) -> float:
        cap = self.permanent_cap if failure is not None and failure.permanent else self.cap
        base = min(cap, self.first * float(2 ** min(attempts, 20)))
        jittered = base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret
        retry_after = failure.retry_after if failure is not None else None
        return max(jittered, retry_after or 0.0)


class Reconciler:
    """The outbox's one consumer per process; any number of processes may run one."""

    def __init__(
        self,
        states: CardStates,
        sender: CardSender,
        *,
        interval: float = 1.0,
        lease: float = 30.0,
        concurrency: int = 8,
        idle: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.states = states
        self.sender = sender
        self.interval = interval
        self.lease = lease
        self.concurrency = concurrency
        self.idle = idle
        self.backoff = backoff or Backoff()
        self.running = False
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._inflight: set[str] = set()
        self._claimed: set[str] = set()
        self._failing = False
        self._paused: dict[str, float] = {}
        self._later: dict[str, tuple[str, Blocks | None]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}
        states.on_change(self.wake)

    def wake(self) -> None:
        self._wake.set()

    # -- desired states ---------------------------------------------------------------------

    def revise_later(self, key: str, text: str, blocks: Blocks | None = None) -> None:
        """Record a new state for an existing card without waiting (latest wins)."""
        self._later[key] = (text, blocks)
        if key not in self._writers:
            task = asyncio.get_running_loop().create_task(self._write_later(key))
            self._writers[key] = task

    async def _write_later(self, key: str) -> None:
        try:
            while (item := self._later.pop(key, None)) is not None:
                try:
                    await self.states.revise(key, *item)
                except Exception:
                    log.exception("card_revise_failed", card=key)
        finally:
            del self._writers[key]

    async def written(self) -> None:
        """Wait until every ``revise_later`` has reached the store."""
        while self._writers:
            await asyncio.gather(*self._writers.values(), return_exceptions=True)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and send due cards until cancelled (the supervisor restarts it if it dies)."""
        self.running = True
        try:
            while True:
                self._wake.clear()
                batch = await self.states.claim(lease=self.lease, limit=self.concurrency * 4)
                if batch:
                    self._claimed = {state.key for state in batch}
                    await self._send_all(batch)
                    self._claimed = set()
                else:
                    await self._settle_signal()
                    await self._sleep()
                await self._settle_signal()
        finally:
            self.running = False
            left, self._claimed = self._claimed, set()
            with contextlib.suppress(Exception):
                await asyncio.shield(self.states.release(left))
            await self._settle_signal()

    async def settled(self) -> None:
        """Wait until every card is shown as asked, except those backing off after a failure
        (returns at once when the loop is not running)."""
        await self.written()
        while self.running:
            if not self._inflight and await self.states.unsettled() == 0:
                return
            self.wake()
            async with self._progress:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self._progress.wait()

    async def _sleep(self) -> None:
        due = await self.states.next_due()
        wait = self.idle
        if due is not None:
            wait = min(self.idle, max(0.01, (due - datetime.now(UTC)).total_seconds()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._wake.wait()

    async def _settle_signal(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    async def _send_all(self, batch: Iterable[CardState]) -> None:
        """Cards first, then thread replies (which need their card's message)."""
        states = list(batch)
        limit = asyncio.Semaphore(self.concurrency)

        async def one(state: CardState) -> None:
            async with limit:
                await self._send(state)

        for replies in (False, True):
            group = [s for s in states if (s.parent is not None) == replies]
            await asyncio.gather(*(one(s) for s in group))

    async def _send(self, state: CardState) -> None:
        self._inflight.add(state.key)
        try:
            where = await self._deliver(state)
        except SendFailed as failure:
            await self._failed(state, failure)
        except Exception as err:
            log.exception("card_send_crashed", card=state.key)
            await self.states.failed(
                state.key, type(err).__name__, retry_in=self.backoff.delay(state.attempts, None)
            )
        else:
            await self.states.synced(state, where, pause=self.interval)
            if self._failing:  # Slack answers again: what backs off need not wait it out
                self._failing = False
                await self.states.retry_now()
        finally:
            self._inflight.discard(state.key)

    async def _failed(self, state: CardState, failure: SendFailed) -> None:
        self._failing = not failure.permanent or self._failing
        if failure.gone:
            await self.states.forget_where(state.key)
        if failure.retry_after:
            self._paused[failure.method] = time.monotonic() + failure.retry_after
        delay = 0.0 if failure.gone else self.backoff.delay(state.attempts, failure)
        log.warning(
            "card_send_failed",
            card=state.key,
            method=failure.method,
            reason=failure.reason,
            attempts=state.attempts + 1,
            retry_in=round(delay, 2),
        )
        await self.states.failed(state.key, failure.reason, retry_in=delay)

    async def _deliver(self, state: CardState) -> CardRef:
        """Post, adopt or edit the card's message so that it shows ``state``."""
        metadata = card_metadata(state.key, state.generation)
        channel, thread_ts = state.channel, None
        if state.parent is not None:
            parent = await self.states.where(state.parent)
            if parent is None:
                raise SendFailed("chat.postMessage", "parent_not_posted")
            channel, thread_ts = parent.channel, parent.ts
        where = state.where
        if where is None and (state.claims > 1 or state.attempts > 0):
            where = await self._find(state, channel, metadata, thread_ts)
        if where is None:
            self._check_pause("chat.postMessage")
            posted = await self.sender.post_card(
                channel, state.text, state.blocks, metadata=metadata, thread_ts=thread_ts
            )
            crash_point("reply.posted" if state.parent else "card.posted", state.key)
            return CardRef(state.key, *posted)
        self._check_pause("chat.update")
        await self.sender.update_card(
            where.channel, where.ts, state.text, state.blocks, metadata=metadata
        )
        return where

    async def _find(
        self, state: CardState, channel: str, metadata: dict[str, Any], thread_ts: str | None
    ) -> CardRef | None:
        """A send of this card may have posted before its answer was lost: look for it."""
        method = "conversations.replies" if thread_ts else "conversations.history"
        self._check_pause(method)
        oldest = (state.created_at - LOOKBACK_MARGIN).timestamp()
        found = await self.sender.find_card(channel, metadata, oldest=oldest, thread_ts=thread_ts)
        if found is None:
            return None
        log.info("card_adopted", card=state.key, channel=found[0], ts=found[1])
        return CardRef(state.key, *found)

    def _check_pause(self, method: str) -> None:
        left = self._paused.get(method, 0.0) - time.monotonic()
        if left > 0:
            raise SendFailed(method, "ratelimited", retry_after=left)
