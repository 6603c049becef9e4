"""Button clicks. Authorization is checked here, at click time, never at render time."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.errors import UserInputError
from bot.intents import DeployStart
from bot.views.actions import ActionId, ChangeTarget, DeployTarget, EnvTarget, RunTarget
from bot.views.blocks import Message
from bot.views.replies import info_reply
from handlers import incident_actions
from handlers.deploy_commands import reply_first
from handlers.deps import Deps
from handlers.outcome import (
    Interaction,
    Reply,
    ReplyFirst,
    Result,
    acking,
    delivery_key,
    handle,
    recorded_item,
)

Value = TypeVar("Value", bound=BaseModel)
Work = Callable[[Interaction], Awaitable[Result]]


def register(app: AsyncApp, deps: Deps) -> None:
    clicks = Clicks(deps)
    app.action(str(ActionId.UNLOCK))(acking(clicks.on_unlock))
    app.action(str(ActionId.APPROVE))(acking(clicks.on_approve))
    app.action(str(ActionId.REJECT))(acking(clicks.on_reject))
    app.action(str(ActionId.DEPLOY_RUN))(acking(clicks.on_deploy_run))
    app.action(str(ActionId.AB_APPROVE))(acking(clicks.on_ab_approve))
    app.action(str(ActionId.AB_REJECT))(acking(clicks.on_ab_reject))
    incident_actions.register(app, deps, clicks.run, parse_value)


def button_value(body: dict[str, Any]) -> str:
    actions = body.get("actions") or [{}]
    return str(actions[0].get("value", ""))


def parse_value(model: type[Value], raw: str) -> Value:
    """A button's value as the validated model it was rendered from."""
    try:
        return model.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        raise UserInputError(
            "That button carries a value the bot cannot read; use the slash command "
            "instead (`/deploy help`)."
        ) from None


class Clicks:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def run(
        self, action: ActionId, body: dict[str, Any], context: AsyncBoltContext, work: Work
    ) -> None:
        user = str(body.get("user", {}).get("id", ""))
        channel = str(body.get("channel", {}).get("id", ""))
        interaction = Interaction(
            kind="click",
            action=str(action),
            actor=user,
            correlation_id=str(context["correlation_id"]),
            parameters={"value": button_value(body)[:300]},
            delivery=delivery_key(body),
            recorded=recorded_item(context),
        )
        reply = Reply(self.deps.chat, channel, user, body.get("response_url"))
        await handle(self.deps, interaction, reply, work)

    async def on_unlock(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await self.run(ActionId.UNLOCK, body, context, self.unlock)

    async def on_approve(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await self.run(ActionId.APPROVE, body, context, self.approve)

    async def on_reject(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await self.run(ActionId.REJECT, body, context, self.reject)

    async def on_deploy_run(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await self.run(ActionId.DEPLOY_RUN, body, context, self.deploy_run)

    async def unlock(self, interaction: Interaction) -> Message:
        target = parse_value(EnvTarget, str(interaction.parameters["value"]))
        interaction.target, interaction.model = f"{target.model}/{target.env}", target.model
        await self.deps.locks.unlock(interaction.actor, target.model, target.env)
        return info_reply(f":unlock: Unlocked *{target.model}/{target.env}*.")

    async def approve(self, interaction: Interaction) -> Message:
        return await self.vote(interaction, approve=True)

    async def reject(self, interaction: Interaction) -> Message:
        return await self.vote(interaction, approve=False)

    async def vote(self, interaction: Interaction, *, approve: bool) -> Message:
        target = parse_value(DeployTarget, str(interaction.parameters["value"]))
        interaction.target = f"deploy #{target.deploy}"
        said = await self.deps.approvals.vote(
            interaction.actor, target.deploy, approve=approve, via="button"
        )
        return info_reply(said)

    async def deploy_run(self, interaction: Interaction) -> ReplyFirst:
        """The run card's next step: deploy that run to the first environment."""
        target = parse_value(RunTarget, str(interaction.parameters["value"]))
        interaction.target, interaction.model = f"{target.model}/{target.env}", target.model
        if target.model not in self.deps.settings.models:
            raise UserInputError(f"{target.model} is no longer configured.")
        deploys = self.deps.deploys
        d = await deploys.record(
            interaction.actor,
            DeployStart(model=target.model, env=target.env, run=target.run),
            interaction.delivery,
        )
        text = f":rocket: Deploy #{d.id} of run #{target.run} to *{d.env}* is {d.state}."
        return await reply_first(self.deps, d, text, lambda: deploys.reopen(d))

    async def on_ab_approve(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await self.run(ActionId.AB_APPROVE, body, context, self.ab_approve)

    async def on_ab_reject(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await self.run(ActionId.AB_REJECT, body, context, self.ab_reject)

    async def ab_approve(self, interaction: Interaction) -> Message:
        return await self.ab_vote(interaction, approve=True)

    async def ab_reject(self, interaction: Interaction) -> Message:
        return await self.ab_vote(interaction, approve=False)

    async def ab_vote(self, interaction: Interaction, *, approve: bool) -> Message:
        """A vote on a waiting A/B weight change (the prompt on the A/B card)."""
        target = parse_value(ChangeTarget, str(interaction.parameters["value"]))
        interaction.target = f"A/B change #{target.change}"
        said = await self.deps.ab.approvals.vote(
            interaction.actor, target.change, approve=approve, via="button"
        )
        return info_reply(said)
