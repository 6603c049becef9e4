"""Emoji reactions. Approvals by reaction arrive with the deploy flow; today they are audited."""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from handlers.deps import Deps
from handlers.outcome import acknowledge, audit_only, delivery_key

log = structlog.get_logger(__name__)


def register(app: AsyncApp, deps: Deps) -> None:
    async def on_reaction(
        body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        item = event.get("item", {})
        target = f"{item.get('channel', '')}/{item.get('ts', '')}"
        await audit_only(
            deps,
            delivery=delivery_key(body),
            kind=f"reaction.{event.get('type', '')}",
            actor=str(event.get("user", "")),
            target=target,
            correlation_id=str(context["correlation_id"]),
            parameters={"reaction": event.get("reaction", "")},
        )

    app.event("reaction_added")(ack=acknowledge, lazy=[on_reaction])
    app.event("reaction_removed")(ack=acknowledge, lazy=[on_reaction])
