"""What the edge needs from the core, built once by bot/app.py and handed to each register()."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config.settings import Settings
from bot.inflight import InFlight
from bot.logs import SecretScrubber
from bot.metrics import Metrics
from bot.ports import Chat
from bot.services.ab.commands import AbExperiments
from bot.services.access import Access
from bot.services.deploys.approvals import Approvals
from bot.services.deploys.locks import Locks
from bot.services.deploys.requests import DeployReports, Deploys
from bot.services.training.commands import Training
from bot.store import Store
from handlers.parsing import Catalog


@dataclass(frozen=True)
class Deps:
    settings: Settings
    store: Store
    chat: Chat
    metrics: Metrics
    scrubber: SecretScrubber
    access: Access
    locks: Locks
    training: Training
    deploys: Deploys
    reports: DeployReports
    approvals: Approvals
    inflight: InFlight
    ab: AbExperiments

    @property
    def catalog(self) -> Catalog:
        return Catalog(
            models={name: list(m.environments) for name, m in self.settings.models.items()}
        )
