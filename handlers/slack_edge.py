"""The Slack edge: authenticate, record, ack. Nothing is acked that is not in the store.

Over HTTP (``POST /slack/events``) the signature is checked from the headers and raw bytes
before anything is parsed; in Socket Mode the connection itself is authenticated. Either way a
command, click or reaction the bot answers is written to the store's interaction inbox (one
write) and then acked; the processor runs it from there, so a crash after the ack loses
nothing. Anything else is answered 200 and counted (or 400 when the sender can fix it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from bot.crash import crash_point
from bot.metrics import Metrics
from bot.store import faults
from bot.store.inbox import Delivery, Inbox
from handlers.slack_requests import (
    Accept,
    Challenge,
    Ignore,
    Malformed,
    UnknownCommand,
    Verdict,
    Vocabulary,
    classify,
    classify_command,
    classify_event,
    classify_interactive,
    signature_ok,
)

log = structlog.get_logger(__name__)
QUIET_SECONDS = 0.1
"""How long after its last answer the edge still counts as busy (see ``SlackEdge.busy``)."""


@dataclass(frozen=True)
class Answer:
    """What to answer Slack: a status and an optional JSON body."""

    status: int
    body: dict[str, Any] | None = None


class SlackEdge:
    def __init__(
        self,
        inbox: Inbox,
        vocabulary: Vocabulary,
        metrics: Metrics,
        wake: Callable[[], None],
        *,
        signing_secret: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inbox = inbox
        self.vocabulary = vocabulary
        self.metrics = metrics
        self.wake = wake
        self.signing_secret = signing_secret
        self.clock = clock
        self.in_flight = 0  # requests being answered now (the processor yields to them)
        self.last_answer = -QUIET_SECONDS  # monotonic time the newest answer went out

    def busy(self) -> bool:
        """True while Slack waits for an answer from this edge, and for a moment after each:
        a burst's requests may pause for tens of ms (a sender preparing the next ones), and
        listeners started in such a pause would run during the acks that follow it."""
        return self.in_flight > 0 or time.monotonic() - self.last_answer < QUIET_SECONDS

    def _answered(self) -> None:
        self.in_flight -= 1
        self.last_answer = time.monotonic()

    async def http(self, request: web.Request) -> web.Response:
        """``POST /slack/events``: 401 unless signed; then the verdict's answer."""
        self.in_flight += 1
        try:
            return await self._http(request)
        finally:
            self._answered()

    async def _http(self, request: web.Request) -> web.Response:
        raw = await request.read()  # aiohttp answers 413 past client_max_size
        if self.signing_secret is None or not signature_ok(
            self.signing_secret, request.headers, raw, self.clock()
        ):
            self.metrics.ignore("slack", "bad signature")
            return web.Response(status=401, text="invalid Slack signature\n")
        verdict = classify(raw, request.headers.get("Content-Type", ""), self.vocabulary)
        answer = await self.answer(verdict)
        if answer.body is None:
            return web.Response(status=answer.status)
        return web.json_response(answer.body, status=answer.status)

    async def socket(self, envelope_type: str, payload: Any) -> Answer:
        """A Socket Mode envelope's payload; the caller acks the envelope with the answer."""
        self.in_flight += 1
        try:
            return await self._socket(envelope_type, payload)
        finally:
            self._answered()

    async def _socket(self, envelope_type: str, payload: Any) -> Answer:
        if not isinstance(payload, dict):
            return await self.answer(Ignore("payload is not an object"))
        if envelope_type == "slash_commands":
            verdict = classify_command(payload, self.vocabulary)
        elif envelope_type == "interactive":
            verdict = classify_interactive(payload, self.vocabulary)
        elif envelope_type == "events_api":
            verdict = classify_event(payload, self.vocabulary)
        else:
            verdict = Ignore(f"socket mode {envelope_type[:40]}")
        return await self.answer(verdict)

    async def answer(self, verdict: Verdict) -> Answer:
        if isinstance(verdict, Accept):
            return await self.record(verdict)
        if isinstance(verdict, Challenge):
            return Answer(200, {"challenge": verdict.challenge})
        if isinstance(verdict, UnknownCommand):
            self.metrics.ignore("slack", "unknown command")
            return Answer(200, verdict.reply())
        if isinstance(verdict, Malformed):
            self.metrics.ignore("slack", "malformed")
            log.debug("slack_request_malformed", reason=verdict.reason)
            return Answer(400, {"error": verdict.reason})
        self.metrics.ignore("slack", verdict.reason)
        log.debug("slack_request_ignored", reason=verdict.reason)
        return Answer(200)

    async def record(self, accepted: Accept) -> Answer:
        """One store write, then the ack; a store that cannot take it is said plainly."""
        delivery = Delivery(accepted.key, accepted.kind, None, json.dumps(accepted.payload))
        try:
            new = await self.inbox.put(delivery)
        except Exception as err:
            reason = faults.reason(err)[0]
            self.metrics.interaction_count("unrecorded").inc()
            log.error("interaction_not_recorded", key=accepted.key, reason=reason)
            text = f"Nothing was started: the bot cannot record commands right now ({reason})."
            if accepted.kind == "command":
                return Answer(200, {"response_type": "ephemeral", "text": text})
            return Answer(503, {"error": text})
        self.metrics.interaction_count("recorded" if new else "duplicate").inc()
        crash_point("interaction.recorded", accepted.kind)
        if new:
            self.wake()
        else:
            log.info("duplicate_delivery_dropped", key=accepted.key)
        return Answer(200)
