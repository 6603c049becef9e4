"""The daily digest: once a day, after the config's `digest` time (UTC), per monitored model
environment, a chart of the last 24 hours from the check history (drift per feature of the
latest check, production accuracy over the period, deploys marked) shared into the model's
channel with a short summary. The day it was sent is kept in the store, so a restart does not
send it again; a failed upload is tried again on the next round."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

import structlog

from bot.clock import Clock, utcnow
from bot.config.settings import Settings
from bot.domain.deploys import Deployment, DeployState
from bot.domain.monitoring.chart import (
    AccuracyPoint,
    DeployMark,
    DigestChart,
    DigestData,
    DriftBar,
    render_digest,
)
from bot.domain.monitoring.incidents import CheckResult
from bot.services.monitoring.ports import FileShares
from bot.store import Store
from bot.store.monitoring import MonitoringStore
from bot.views.monitoring import digest_summary

log = structlog.get_logger(__name__)
PERIOD = timedelta(hours=24)
DEPLOYS_READ = 50  # the newest deploys of the environment looked at for marks
SEND_TIMEOUT = 300.0  # history read, chart drawn and uploaded


def due_day(digest: str, last_day: str | None, now: datetime) -> str | None:
    """Today (YYYY-MM-DD, UTC) when the digest time has passed and today's is not sent yet."""
    hour, minute = (int(part) for part in digest.split(":"))
    now = now.astimezone(UTC)
    today = now.date().isoformat()
    sent = last_day is not None and last_day >= today  # ISO dates sort as they follow
    if now.time() < time(hour, minute) or sent:
        return None
    return today


def drift_bars(checks: Sequence[CheckResult]) -> list[DriftBar]:
    """Each profile's statistic and threshold as of the latest check that tested it."""
    latest: dict[str, DriftBar] = {}
    for check in checks:
        finding = check.finding("drift")
        features = finding.values.get("features", {}) if finding else {}
        for name, f in features.items():
            if f.get("statistic") is not None and f.get("threshold") is not None:
                latest[name] = DriftBar(name, f["statistic"], f["threshold"], f.get("drifted"))
    return list(latest.values())


def accuracy_points(checks: Sequence[CheckResult]) -> list[AccuracyPoint]:
    found = []
    for check in checks:
        finding = check.finding("accuracy")
        v = finding.values if finding else {}
        if v.get("accuracy") is not None:
            at = check.checked_at
            found.append(AccuracyPoint(at, v["accuracy"], v.get("low"), v.get("high"), v["labels"]))
    return found


def yardstick(checks: Sequence[CheckResult]) -> float | None:
    for check in reversed(checks):
        finding = check.finding("accuracy")
        if finding is not None and finding.values.get("expected") is not None:
            return float(finding.values["expected"])
    return None


def deploy_marks(deploys: Sequence[Deployment], since: datetime) -> list[DeployMark]:
    """Deploys and rollbacks that went live in the period."""
    return [
        DeployMark(d.finished_at, d.id)
        for d in deploys
        if d.state == DeployState.SUCCEEDED and d.finished_at and d.finished_at >= since
    ]


LOOK_BACK = timedelta(days=1)


def day_start(day: str) -> float:
    """Epoch seconds of 00:00 UTC on ``day`` (YYYY-MM-DD)."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()


def digest_data(
    model: str, env: str, checks: Sequence[CheckResult], deploys: Sequence[Deployment],
    since: datetime,
) -> DigestData:  # fmt: skip
    return DigestData(
        model, env, drift_bars(checks), accuracy_points(checks), deploy_marks(deploys, since),
        yardstick(checks),
    )  # fmt: skip


class Digests:
    def __init__(
        self, settings: Settings, store: Store, files: FileShares, clock: Clock = utcnow
    ) -> None:
        self.settings = settings
        self.store = store
        self.monitoring = MonitoringStore(store.db)
        self.files = files
        self.clock = clock

    def scheduled(self) -> list[tuple[str, str, str]]:
        return [
            (model, env, config.monitoring.digest)
            for model, config in self.settings.models.items()
            if config.monitoring is not None and config.monitoring.digest
            for env in config.monitoring.environments
        ]

    async def round(self) -> None:
        """Sends each digest that is due; one that fails is logged and tried next round."""
        for model, env, digest in self.scheduled():
            try:
                day = due_day(digest, await self.monitoring.digest_day(model, env), self.clock())
                if day is not None:
                    async with asyncio.timeout(SEND_TIMEOUT):
                        await self.send(model, env, day)
            except Exception:
                log.exception("monitoring.digest_failed", model=model, env=env)

    async def send(self, model: str, env: str, day: str, *, again: bool = False) -> str:
        """Shares one digest unless the channel already has it (an attempt that died, or lost
        Slack's answer, before recording it) or ``again`` (asked for by hand), then records
        the day; the file's id."""
        now = self.clock()
        channel, filename = self.settings.models[model].channel, f"{model}-{env}-digest-{day}.png"
        # from the day before: Slack's clock is not ours, and the name holds the day anyway
        oldest = day_start(day) - LOOK_BACK.total_seconds()
        file_id = None if again else await self.files.find_file(channel, filename, oldest=oldest)
        if file_id is None:
            file_id = await self.share(model, env, day, channel, filename)
        else:
            log.info("monitoring.digest_found", model=model, env=env, day=day, file_id=file_id)
        await self.monitoring.digest_sent(model, env, day, now, file_id)
        log.info("monitoring.digest_sent", model=model, env=env, day=day, file_id=file_id)
        return file_id

    async def share(self, model: str, env: str, day: str, channel: str, filename: str) -> str:
        """Builds, draws and uploads the digest of the last day; the file's id."""
        since = self.clock() - PERIOD
        checks = await self.monitoring.checks_since(model, env, since)
        deploys = await self.store.deployments.history(model, env, limit=DEPLOYS_READ)
        data = digest_data(model, env, checks, deploys, since)
        chart: DigestChart = await asyncio.to_thread(render_digest, data)
        active = await self.monitoring.active(model, env)
        return await self.files.upload_file(
            channel,
            filename,
            chart.png,
            f"{model}/{env} digest {day}",
            digest_summary(data, len(checks), len(active)),
        )
