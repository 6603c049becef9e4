"""What people do with monitoring: ask for an environment's health, acknowledge or snooze an
incident (a deployer's call there, as a rollback is; checked when the button is clicked)."""

from __future__ import annotations

from bot.config.settings import Settings
from bot.domain.monitoring.incidents import Incident
from bot.errors import UserInputError
from bot.policy import Action
from bot.ports import Chat
from bot.services.access import Access
from bot.services.cards import Cards
from bot.services.monitoring.incidents import Incidents
from bot.store import Store
from bot.store.monitoring import MonitoringStore
from bot.views.blocks import Message
from bot.views.monitoring import health_reply


class MonitoringCommands:
    def __init__(self, settings: Settings, store: Store, access: Access, chat: Chat) -> None:
        self.settings = settings
        self.access = access
        self.monitoring = MonitoringStore(store.db)
        self.incidents = Incidents(settings, store, Cards(store, chat))

    async def health(self, actor: str, model: str, env: str) -> Message:
        """As of the last check: SLOs, drift and accuracy, and the open incidents."""
        await self.access.check(actor, Action.DEPLOY_VIEW, model, env)
        config = self.settings.models[model].monitoring
        if config is None or env not in config.environments:
            raise UserInputError(
                f"{model}/{env} is not monitored: add `monitoring.environments.{env}` to "
                f"`models.{model}` in the config (see docs/monitoring.md)."
            )
        last = await self.monitoring.last_check(model, env)
        return health_reply(model, env, last, await self.monitoring.active(model, env))

    async def acknowledge(self, actor: str, incident_id: int) -> Incident:
        incident = await self.incidents.incident(incident_id)
        await self.access.check(actor, Action.DEPLOY_ROLLBACK, incident.model, incident.env)
        return await self.incidents.acknowledge(incident_id, actor)

    async def snooze(self, actor: str, incident_id: int) -> Incident:
        incident = await self.incidents.incident(incident_id)
        await self.access.check(actor, Action.DEPLOY_ROLLBACK, incident.model, incident.env)
        return await self.incidents.snooze(incident_id)
