"""Bolt middleware: a correlation id per request, bound into every log line."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import structlog
from slack_bolt.async_app import AsyncApp, AsyncBoltContext


def register(app: AsyncApp) -> None:
    async def correlate(context: AsyncBoltContext, next: Callable[[], Awaitable[None]]) -> None:
        correlation_id = uuid.uuid4().hex[:12]
        context["correlation_id"] = correlation_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            correlation_id=correlation_id, user=context.user_id or "", team=context.team_id or ""
        )
        await next()

    app.middleware(correlate)
