"""Emoji reactions: on a deploy card, the environment's approve and reject emoji are votes."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.views.blocks import Message
from bot.views.replies import info_reply
from handlers.deps import Deps
from handlers.outcome import (
    Interaction,
    Reply,
    acking,
    delivery_key,
    handle,
    recorded_item,
)


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def register(app: AsyncApp, deps: Deps) -> None:
    async def on_reaction(body: dict[str, Any], context: AsyncBoltContext) -> None:
        event = mapping(body.get("event"))
        item = mapping(event.get("item"))
        channel, ts = str(item.get("channel", "")), str(item.get("ts", ""))
        actor = str(event.get("user", ""))
        added = event.get("type") == "reaction_added"
        interaction = Interaction(
            kind=f"reaction.{event.get('type', '')}",
            actor=actor,
            correlation_id=str(context["correlation_id"]),
            target=f"{channel}/{ts}",
            parameters={"reaction": event.get("reaction", "")},
            delivery=delivery_key(body),
            recorded=recorded_item(context),
        )

        async def work(_: Interaction) -> Message | None:
            emoji = str(event.get("reaction", ""))
            said = await deps.approvals.reaction(actor, channel, ts, emoji, added=added)
            if said is None:  # an A/B card's weight prompt, perhaps
                said = await deps.ab.approvals.reaction(actor, channel, ts, emoji, added=added)
            return info_reply(said) if said else None

        await handle(deps, interaction, Reply(deps.chat, channel, actor), work)

    app.event("reaction_added")(acking(on_reaction))
    app.event("reaction_removed")(acking(on_reaction))
