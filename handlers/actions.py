"""Button clicks. Authorization is checked here, at click time, never at render time."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.errors import UserInputError
from bot.views.actions import ActionId, EnvTarget
from bot.views.blocks import Message
from bot.views.replies import info_reply
from handlers.deps import Deps
from handlers.outcome import Interaction, Reply, acknowledge, delivery_key, handle


def register(app: AsyncApp, deps: Deps) -> None:
    clicks = Clicks(deps)
    app.action(str(ActionId.UNLOCK))(ack=acknowledge, lazy=[clicks.on_unlock])


def button_value(body: dict[str, Any]) -> str:
    actions = body.get("actions") or [{}]
    return str(actions[0].get("value", ""))


def env_target(raw: str) -> EnvTarget:
    try:
        return EnvTarget.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        raise UserInputError(
            "That button carries a value the bot cannot read; use the "
            "command instead, e.g. `/deploy <model> unlock <env>`."
        ) from None


class Clicks:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def on_unlock(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        user = str(body.get("user", {}).get("id", ""))
        channel = str(body.get("channel", {}).get("id", ""))
        interaction = Interaction(
            kind="click",
            action=str(ActionId.UNLOCK),
            actor=user,
            correlation_id=str(context["correlation_id"]),
            parameters={"value": button_value(body)[:300]},
            delivery=delivery_key(body),
        )
        reply = Reply(self.deps.chat, channel, user, body.get("response_url"))
        await handle(self.deps, interaction, reply, self.unlock)

    async def unlock(self, interaction: Interaction) -> Message:
        target = env_target(str(interaction.parameters["value"]))
        interaction.target, interaction.model = f"{target.model}/{target.env}", target.model
        await self.deps.locks.unlock(interaction.actor, target.model, target.env)
        return info_reply(f":unlock: Unlocked *{target.model}/{target.env}*.")
