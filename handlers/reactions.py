"""Emoji reactions. Approvals by reaction arrive with the deploy flow; today they are audited."""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext

from handlers.deps import Deps
from handlers.outcome import audit_only

log = structlog.get_logger(__name__)


def register(app: AsyncApp, deps: Deps) -> None:
    async def on_reaction(ack: AsyncAck, event: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        item = event.get("item", {})
        target = f"{item.get('channel', '')}/{item.get('ts', '')}"
        await audit_only(deps, kind=f"reaction.{event.get('type', '')}",
                         actor=str(event.get("user", "")), target=target,
                         correlation_id=str(context["correlation_id"]),
                         parameters={"reaction": event.get("reaction", "")})

    app.event("reaction_added")(on_reaction)
    app.event("reaction_removed")(on_reaction)
