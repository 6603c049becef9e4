"""The monitoring loop: every ``interval_minutes``, for each model environment with a
``monitoring`` section, check the SLOs in CloudWatch, the drift of the latest window of
predictions against the deployed run's reference, and production accuracy against the
deployed run's test-set accuracy; keep the result and follow incidents. A read that fails is
an unknown finding (never healthy, never a breach); the next round tries again. Each round
also sends the daily digests that are due (bot/services/monitoring/digest.py)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import structlog

from bot.clock import Clock, utcnow
from bot.config.monitoring import EnvMonitoring, MonitoringConfig
from bot.config.settings import Settings
from bot.domain.monitoring.incidents import CheckResult, Finding, Status
from bot.domain.monitoring.reference import Reference, ReferenceError, parse_reference
from bot.domain.runs import Run
from bot.errors import BotError
from bot.ports import CloudMetrics
from bot.services.monitoring.digest import Digests
from bot.services.monitoring.incidents import Incidents
from bot.services.monitoring.ports import PredictionScans
from bot.services.monitoring.quality import check_drift, check_production_accuracy
from bot.services.monitoring.slos import judge_slos, slo_queries
from bot.store import Store
from bot.store.monitoring import MonitoringStore

log = structlog.get_logger(__name__)
TICK = 30.0
CHECK_TIMEOUT = 600.0  # one environment's check, reads included


class Monitor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        incidents: Incidents,
        metrics: CloudMetrics | None,
        scans: PredictionScans | None,
        clock: Clock = utcnow,
        tick: float = TICK,
        digests: Digests | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.monitoring = MonitoringStore(store.db)
        self.incidents = incidents
        self.metrics = metrics
        self.scans = scans
        self.clock = clock
        self.tick = tick
        self.digests = digests

    def watched(self) -> list[tuple[str, str, MonitoringConfig, EnvMonitoring]]:
        return [
            (model, env, config.monitoring, section)
            for model, config in self.settings.models.items()
            if config.monitoring is not None
            for env, section in config.monitoring.environments.items()
        ]

    async def run(self) -> None:
        while True:
            await self.round()
            await asyncio.sleep(self.tick)

    async def round(self) -> None:
        for model, env, config, _ in self.watched():
            try:
                last = await self.monitoring.last_check(model, env)
                every = timedelta(minutes=config.interval_minutes)
                if last is None or self.clock() - last.checked_at >= every:
                    async with asyncio.timeout(CHECK_TIMEOUT):
                        await self.check(model, env)
            except Exception:
                log.exception("monitoring.check_failed", model=model, env=env)
        if self.digests is not None:
            await self.digests.round()

    async def check(self, model: str, env: str) -> CheckResult:
        """One check of one environment, kept as its last; incidents follow from it."""
        config = self.settings.models[model].monitoring
        assert config is not None
        section = config.environments[env]
        now = self.clock()
        deploy = await self.store.deployments.last_good(model, env)
        run = await self.store.runs.get(deploy.run_id) if deploy and deploy.run_id else None
        findings = await self.slos(section, config) if section.cloudwatch else []
        if section.predictions:
            findings += await self.quality(run, section, config)
        result = CheckResult(now, deploy.id if deploy else None, run.id if run else None, findings)
        await self.monitoring.save_check(model, env, result)
        await self.incidents.follow(model, env, result)
        log.info("monitoring.checked", model=model, env=env, breaches=len(result.breaches))
        return result

    async def slos(self, section: EnvMonitoring, config: MonitoringConfig) -> list[Finding]:
        assert section.cloudwatch is not None
        if self.metrics is None:
            return [unknown("slos", "SLOs", "CloudWatch is not configured (aws settings)")]
        queries = slo_queries(section.cloudwatch)
        try:
            values = await self.metrics.read(queries, seconds=config.window * 60.0)
        except BotError as exc:
            return [unknown("slos", "SLOs", f"CloudWatch could not be read: {exc}")]
        return judge_slos(section.cloudwatch, values)

    async def quality(
        self, run: Run | None, section: EnvMonitoring, config: MonitoringConfig
    ) -> list[Finding]:
        reference, why = await self.reference(run)
        if reference is None or self.scans is None:
            why = why if reference is None else "S3 is not configured (aws settings)"
            return [unknown("drift", "drift", why)]
        now = self.clock()
        try:
            found = [await check_drift(self.scans, reference, section, config, now)]
            if section.labels:
                expected = (run.metrics or {}).get("accuracy") if run else None
                found.append(
                    await check_production_accuracy(
                        self.scans, reference, section, config, expected, now
                    )
                )
        except BotError as exc:
            return [unknown("drift", "drift", f"prediction logs could not be read: {exc}")]
        return found

    async def reference(self, run: Run | None) -> tuple[Reference | None, str]:
        """The deployed run's reference profile, or why there is none."""
        if run is None:
            return None, "no deployed run is known here, so there is no reference to compare with"
        kept = await self.monitoring.reference(run.id)
        if kept is None:
            return None, f"run #{run.id} has no reference.json beside its metrics"
        if kept.profile is None:
            return None, f"run #{run.id}'s reference ({kept.source}) is not valid: {kept.error}"
        try:
            return parse_reference(json.dumps(kept.profile).encode()), ""
        except ReferenceError as exc:
            return None, f"run #{run.id}'s reference is not valid: {exc}"


def unknown(kind: str, title: str, text: str) -> Finding:
    return Finding(kind, title, Status.UNKNOWN, text)
