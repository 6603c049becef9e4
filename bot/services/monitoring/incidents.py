"""Incidents from checks: a breach opens one (or updates the open one of its kind), a check
that finds the kind within limits again resolves it; each has one card in the model's channel
(the card outbox), opened, updated and resolved in place, the owners mentioned on it."""

from __future__ import annotations

from datetime import timedelta

import structlog

from bot.clock import Clock, utcnow
from bot.config.settings import Settings
from bot.domain.deploys import Deployment
from bot.domain.monitoring.incidents import CheckResult, Incident, Status
from bot.errors import NotFound
from bot.services.cards import Cards
from bot.store import Store
from bot.store.monitoring import MonitoringStore
from bot.views.monitoring import IncidentContext, incident_card

log = structlog.get_logger(__name__)
SNOOZE = timedelta(hours=24)


class Incidents:
    def __init__(
        self, settings: Settings, store: Store, cards: Cards, clock: Clock = utcnow
    ) -> None:
        self.settings = settings
        self.store = store
        self.monitoring = MonitoringStore(store.db)
        self.cards = cards
        self.clock = clock

    async def follow(self, model: str, env: str, result: CheckResult) -> None:
        """Open or update an incident per breach; resolve those whose kind is OK again (an
        unknown reading, such as no data, neither opens nor resolves)."""
        statuses = {f.kind: f.status for f in result.findings}
        for finding in result.breaches:
            incident, created = await self.monitoring.breach(
                model, env, finding.kind, f"{finding.title}: {finding.text}", result.deploy_id,
                result.checked_at,
            )  # fmt: skip
            if created:
                log.warning("monitoring.incident_opened", incident=incident.id, kind=incident.kind)
            if created or not incident.snoozed(self.clock()):
                await self.show(incident)
        for incident in await self.monitoring.active(model, env):
            if statuses.get(incident.kind) == Status.OK:
                resolved = await self.monitoring.resolve(incident.id, result.checked_at)
                if resolved is not None:
                    log.info("monitoring.incident_resolved", incident=incident.id)
                    await self.show(resolved)

    async def show(self, incident: Incident) -> None:
        config = self.settings.models[incident.model]
        await self.cards.publish(
            incident.card_key, config.channel,
            incident_card(incident, await self.context(incident), self.clock()),
        )  # fmt: skip

    async def context(self, incident: Incident) -> IncidentContext:
        deploys = self.store.deployments
        live = await deploys.get(incident.deploy_id) if incident.deploy_id else None
        back_to = await self.rollback_target(live)
        return IncidentContext(self.settings.models[incident.model].owners, live, back_to)

    async def rollback_target(self, live: Deployment | None) -> Deployment | None:
        """The good deploy before the one that was live when the incident began."""
        if live is None:
            return None
        return await self.store.deployments.last_good(live.model, live.env, before=live.id)

    async def acknowledge(self, incident_id: int, user: str) -> Incident:
        done = await self.monitoring.acknowledge(incident_id, user, self.clock())
        return await self.changed(incident_id, done)

    async def snooze(self, incident_id: int) -> Incident:
        now = self.clock()
        done = await self.monitoring.snooze(incident_id, now + SNOOZE, now)
        return await self.changed(incident_id, done)

    async def changed(self, incident_id: int, done: Incident | None) -> Incident:
        if done is None:
            found = await self.monitoring.incident(incident_id)
            if found is None:
                raise NotFound(f"There is no incident #{incident_id}.")
            return found  # already resolved (or acknowledged): nothing to change
        await self.show(done)
        return done

    async def incident(self, incident_id: int) -> Incident:
        found = await self.monitoring.incident(incident_id)
        if found is None:
            raise NotFound(f"There is no incident #{incident_id}.")
        return found
