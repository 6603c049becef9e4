"""/train and /deploy: ack -> parse -> call a service -> reply."""

from __future__ import annotations

import dataclasses
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot import intents as i
from bot.views.blocks import Message
from handlers import deploy_commands, train_commands
from handlers.deps import Deps
from handlers.outcome import (
    Interaction,
    Reply,
    Result,
    acking,
    delivery_key,
    handle,
    recorded_item,
)
from handlers.parsing import parse_deploy, parse_train


def register(app: AsyncApp, deps: Deps) -> None:
    commands = SlashCommands(deps)
    app.command("/train")(acking(commands.on_train))
    app.command("/deploy")(acking(commands.on_deploy))


def describe(intent: i.TrainIntent | i.DeployIntent) -> tuple[str, str | None, dict[str, Any]]:
    """Audit target, model and parameters of a parsed intent."""
    fields = dataclasses.asdict(intent)
    model, env = fields.get("model"), fields.get("env")
    target = "/".join(str(p) for p in (model, env) if p) or "global"
    return target, model, {k: v for k, v in fields.items() if v not in (None, {}, "")}


class SlashCommands:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def on_train(self, command: dict[str, Any], context: AsyncBoltContext) -> None:
        await self.run("train", command, context)

    async def on_deploy(self, command: dict[str, Any], context: AsyncBoltContext) -> None:
        await self.run("deploy", command, context)

    async def run(self, name: str, command: dict[str, Any], context: AsyncBoltContext) -> None:
        user = str(command.get("user_id", ""))
        interaction = Interaction(
            kind=f"/{name}",
            actor=user,
            correlation_id=str(context["correlation_id"]),
            parameters={"text": str(command.get("text", ""))[:500]},
            delivery=delivery_key(command),
            recorded=recorded_item(context),
        )
        reply = Reply(
            self.deps.chat, str(command.get("channel_id", "")), user, command.get("response_url")
        )
        text = str(command.get("text", ""))
        work = self.train if name == "train" else self.deploy
        await handle(self.deps, interaction, reply, lambda it: work(it, text))

    async def train(self, interaction: Interaction, text: str) -> Message | None:
        intent = parse_train(text, self.deps.catalog)
        note(interaction, "train", intent)
        return await train_commands.dispatch(
            self.deps.training, interaction.actor, intent, interaction.delivery
        )

    async def deploy(self, interaction: Interaction, text: str) -> Result:
        intent = parse_deploy(text, self.deps.catalog)
        note(interaction, "deploy", intent)
        return await deploy_commands.dispatch(
            self.deps, interaction.actor, intent, interaction.delivery
        )


def note(interaction: Interaction, command: str, intent: i.TrainIntent | i.DeployIntent) -> None:
    """Record what was asked for on the interaction, for the audit log."""
    target, model, params = describe(intent)
    interaction.action = f"{command}.{type(intent).__name__.lower()}"
    interaction.target = target
    interaction.model = model
    interaction.parameters.update({"intent": params})
