"""Runs one user interaction: times it, renders any error once, and writes the audit line."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from slack_bolt.async_app import AsyncAck, AsyncBoltContext

from bot.clock import utcnow
from bot.crash import crash_point
from bot.domain.access import AuditEvent, Outcome
from bot.errors import BotError, ExternalError, NotAllowed
from bot.ports import Chat
from bot.views.blocks import Message
from bot.views.replies import error_reply
from handlers.deps import Deps

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Reply:
    """Answers only the person who acted: via response_url when Slack gave one."""

    chat: Chat
    channel: str
    user: str
    response_url: str | None = None

    async def __call__(self, message: Message) -> None:
        if self.response_url:
            await self.chat.respond(self.response_url, message.text, message.blocks)
        else:
            await self.chat.ephemeral(self.channel, self.user, message.text, message.blocks)


@dataclass(frozen=True)
class ReplyFirst:
    """A reply to send before ``then`` runs: the work that follows a recorded request (a
    deploy's card and diff) cannot crash the bot between flagging the reply sent and sending
    it, so a restart neither loses nor repeats it."""

    message: Message | None
    then: Callable[[], Awaitable[object]]


Result = Message | ReplyFirst | None


@dataclass
class Interaction:
    """One command, click or reaction, as the audit log records it."""

    kind: str
    actor: str
    correlation_id: str
    action: str = ""
    target: str = ""
    model: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    delivery: str | None = None
    recorded: Recorded | None = None  # its row in the interactions inbox, when run from there


@dataclass
class Recorded:
    """An interaction's row in the interactions inbox, as the processor hands it to bolt."""

    item: int
    answered: bool = False  # marked processed with its audit line (the processor need not)


INBOX_ITEM = "inbox_item"
"""The bolt context key under which the processor passes ``Recorded``."""


def recorded_item(context: AsyncBoltContext) -> Recorded | None:
    found = context.get(INBOX_ITEM)
    return found if isinstance(found, Recorded) else None


Work = Callable[[dict[str, Any], AsyncBoltContext], Awaitable[None]]


def acking(work: Work) -> Callable[[AsyncAck, dict[str, Any], AsyncBoltContext], Awaitable[None]]:
    """A bolt listener that acks, then runs ``work`` to the end. The edge answered Slack when it
    recorded the interaction, so this ack only tells bolt the request was handled; the
    processor awaits the whole listener before it marks the interaction processed."""

    async def listener(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        await work(body, context)

    return listener


def delivery_key(body: dict[str, Any]) -> str | None:
    """Slack's id for this delivery: the event id, or the trigger id of a command or click."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"
    return None


def outcome_of(error: BaseException | None) -> Outcome:
    if error is None:
        return Outcome.OK
    if isinstance(error, NotAllowed):
        return Outcome.DENIED
    if isinstance(error, BotError) and not isinstance(error, ExternalError):
        return Outcome.REJECTED
    return Outcome.ERROR


async def handle(
    deps: Deps,
    interaction: Interaction,
    reply: Reply,
    work: Callable[[Interaction], Awaitable[Result]],
) -> None:
    """Run ``work``, write the audit line (it marks the recorded interaction processed), then
    reply with the work's message or the one error rendering. Marked before its reply, an
    interaction a kill interrupts there loses that reply instead of being answered twice after
    the restart, and the window is the send alone (a reply through ``response_url`` cannot be
    looked up). A ``ReplyFirst`` reply goes before its follow-up, which a replay must redo."""
    async with deps.inflight.track():
        started = time.perf_counter()
        error: Exception | None = None
        message: Message | None = None
        answered = False  # not when cancelled: the interaction stays pending for a replay
        try:
            result = await work(interaction)
            if isinstance(result, ReplyFirst):
                if result.message is not None:
                    await reply(result.message)
                await result.then()
            else:
                message = result
            answered = True
        except Exception as exc:
            error, answered = exc, True
        finally:
            elapsed = time.perf_counter() - started
            deps.metrics.command_latency.labels(command=interaction.kind).observe(elapsed)
            await audit(deps, interaction, error, answered=answered)
        if error is not None:
            await report(deps, error, interaction, reply)
        elif message is not None:
            await send(reply, message, interaction)
        crash_point("interaction.answered", interaction.kind)


async def send(reply: Reply, message: Message, interaction: Interaction) -> None:
    try:
        await reply(message)
    except Exception:
        log.exception("reply_failed", kind=interaction.kind)


async def report(deps: Deps, exc: Exception, interaction: Interaction, reply: Reply) -> None:
    known = exc if isinstance(exc, BotError) else None
    kind = known.kind if known else "internal"
    deps.metrics.error(kind)
    if known is None:
        log.error("interaction_failed", kind=interaction.kind, exc_info=exc)
    else:
        log.info("interaction_refused", kind=interaction.kind, error_kind=kind, detail=str(exc))
    try:
        await reply(error_reply(known, interaction.correlation_id))
    except Exception:
        log.exception("error_reply_failed")


async def audit(
    deps: Deps, interaction: Interaction, error: BaseException | None, *, answered: bool
) -> None:
    """The audit line, and (once answered) the interaction marked processed with it."""
    detail = str(error) if isinstance(error, BotError) else type(error).__name__ if error else ""
    event = AuditEvent(
        actor=interaction.actor,
        action=interaction.action or interaction.kind,
        target=interaction.target,
        outcome=outcome_of(error),
        correlation_id=interaction.correlation_id,
        at=utcnow(),
        model=interaction.model,
        parameters=deps.scrubber.scrub(interaction.parameters),
        detail=deps.scrubber.scrub(detail),
    )
    try:
        recorded = interaction.recorded if answered else None
        await deps.store.record_audit(event, processed=recorded.item if recorded else None)
        if recorded is not None:
            recorded.answered = True
    except Exception:
        log.exception("audit_write_failed", action=event.action)
