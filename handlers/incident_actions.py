"""Clicks on incident cards: roll back (the ordinary rollback flow, approvals and all),
acknowledge, snooze for 24 hours. Authorization is checked by the services at click time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.intents import DeployRollback
from bot.services.monitoring.commands import MonitoringCommands
from bot.views.actions import ActionId
from bot.views.blocks import Message, when
from bot.views.monitoring import IncidentTarget, RollbackTarget
from bot.views.replies import info_reply
from handlers.deploy_commands import reply_first
from handlers.deps import Deps
from handlers.outcome import Interaction, ReplyFirst, Result, acking

Value = TypeVar("Value", bound=BaseModel)
Work = Callable[[Interaction], Awaitable[Result]]
Run = Callable[[ActionId, dict[str, Any], AsyncBoltContext, Work], Awaitable[None]]
Parse = Callable[[type[BaseModel], str], BaseModel]


def register(app: AsyncApp, deps: Deps, run: Run, parse: Parse) -> None:
    """``run``: handlers.actions' click runner; ``parse``: its button-value parser."""
    clicks = IncidentClicks(deps, parse)
    for action, work in (
        (ActionId.INCIDENT_ROLLBACK, clicks.rollback),
        (ActionId.INCIDENT_ACKNOWLEDGE, clicks.acknowledge),
        (ActionId.INCIDENT_SNOOZE, clicks.snooze),
    ):
        app.action(str(action))(acking(listener(run, action, work)))


def listener(
    run: Run, action: ActionId, work: Work
) -> Callable[[dict[str, Any], AsyncBoltContext], Awaitable[None]]:
    async def on_click(body: dict[str, Any], context: AsyncBoltContext) -> None:
        await run(action, body, context, work)

    return on_click


class IncidentClicks:
    def __init__(self, deps: Deps, parse: Parse) -> None:
        self.deps = deps
        self.parse = parse

    @property
    def monitoring(self) -> MonitoringCommands:
        """Built per click (nothing at registration: deps may not be complete yet)."""
        deps = self.deps
        return MonitoringCommands(deps.settings, deps.store, deps.access, deps.chat)

    async def rollback(self, interaction: Interaction) -> ReplyFirst:
        target = self.value(RollbackTarget, interaction)
        interaction.target, interaction.model = f"{target.model}/{target.env}", target.model
        intent = DeployRollback(target.model, target.env, to=target.to)
        deploys, actor = self.deps.deploys, interaction.actor
        d = await deploys.record_rollback(actor, intent, interaction.delivery)
        text = (
            f":rewind: Rollback #{d.id} of *{d.model}/{d.env}* to deploy #{target.to} is {d.state}."
        )
        return await reply_first(self.deps, d, text, lambda: deploys.reopen_rollback(actor, d))

    def value(self, model: type[Value], interaction: Interaction) -> Value:
        parsed = self.parse(model, str(interaction.parameters["value"]))
        assert isinstance(parsed, model)
        return parsed

    async def acknowledge(self, interaction: Interaction) -> Message:
        target = self.value(IncidentTarget, interaction)
        interaction.target = f"incident #{target.incident}"
        incident = await self.monitoring.acknowledge(interaction.actor, target.incident)
        return info_reply(f":eyes: Incident #{incident.id} is {incident.state}.")

    async def snooze(self, interaction: Interaction) -> Message:
        target = self.value(IncidentTarget, interaction)
        interaction.target = f"incident #{target.incident}"
        incident = await self.monitoring.snooze(interaction.actor, target.incident)
        until = when(incident.snoozed_until) if incident.snoozed_until else "its end"
        return info_reply(f":zzz: Incident #{incident.id} is snoozed until {until}.")
