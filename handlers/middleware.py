"""Bolt middleware: a correlation id per request, and one effect per Slack delivery."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.store import Store

log = structlog.get_logger(__name__)


def delivery_key(body: dict[str, Any]) -> str | None:
    """Slack's id for this delivery: the event id, or the trigger id of a command or click."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"
    return None


def register(app: AsyncApp, store: Store) -> None:
    async def correlate(
        context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> None:
        correlation_id = uuid.uuid4().hex[:12]
        context["correlation_id"] = correlation_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            correlation_id=correlation_id, user=context.user_id or "", team=context.team_id or "")
        await next()

    async def once_per_delivery(
        body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Retries (X-Slack-Retry-Num) and redeliveries of one event id get acked, not rerun."""
        key = delivery_key(body)
        if key is not None and not await store.claim_delivery(key):
            log.info("duplicate_delivery_dropped", key=key)
            return BoltResponse(status=200, body="")
        await next()
        return None

    app.middleware(correlate)
    app.middleware(once_per_delivery)
