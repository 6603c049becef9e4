"""Check history and the daily digest, through the sandbox: every check kept with its figures
(pruned to 14 days), the digest chart shared into the model's channel through Slack's external
upload flow (the Slack stand-in keeps the file), once a day, not again after a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.domain.monitoring.incidents import Status
from bot.sandbox.runner import Sandbox, running_sandbox, sample_config
from bot.services.monitoring.digest import Digests, due_day
from bot.store.monitoring import HISTORY, MonitoringStore
from tests.helpers import eventually
from tests.scenario.test_monitoring import MONITORING, deployed, monitor, put_traffic

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    data = yaml.safe_load(sample_config().read_text())
    data["models"]["fraud"]["owners"] = ["S0FRAUDOWNERS"]
    data["models"]["fraud"]["monitoring"] = MONITORING | {"digest": "00:00"}
    config = tmp_path / "bot.yaml"
    config.write_text(yaml.safe_dump(data))
    async with running_sandbox(config) as running:
        yield running


def digests_of(sandbox: Sandbox) -> list[Any]:
    """The messages sharing a digest chart, oldest first."""
    return [m for m in sandbox.slack.messages if m.files and "digest" in m.files[0]["name"]]


def digests(sandbox: Sandbox) -> Digests:
    found = monitor(sandbox).digests
    assert found is not None
    return found


def test_the_digest_is_due_once_a_day_after_its_time() -> None:
    at = datetime(2026, 3, 2, 8, 59, tzinfo=UTC)
    assert due_day("09:00", None, at) is None
    assert due_day("09:00", None, at + timedelta(minutes=1)) == "2026-03-02"
    assert due_day("09:00", "2026-03-02", at + timedelta(hours=5)) is None
    assert due_day("09:00", "2026-03-01", at + timedelta(hours=5)) == "2026-03-02"
    assert due_day("09:00", "2026-03-03", at + timedelta(hours=5)) is None  # a skewed replica


async def test_each_check_is_kept_with_its_figures_and_old_ones_are_pruned(
    sandbox: Sandbox,
) -> None:
    await deployed(sandbox)
    put_traffic(sandbox, shift=1.0, right=0.6, latency=0.9)
    result = await monitor(sandbox).check("fraud", "prod")
    kept = MonitoringStore(sandbox.bot.store.db)
    history = await kept.checks_since("fraud", "prod", result.checked_at)
    assert [c.checked_at for c in history] == [result.checked_at]
    check = history[0]

    drift = check.finding("drift")
    assert drift is not None and drift.status == Status.BREACHED
    amount = drift.values["features"]["amount"]
    assert amount["drifted"] is True and amount["statistic"] > amount["threshold"] > 0
    assert drift.values["rows"] == 2000
    accuracy = check.finding("accuracy")
    assert accuracy is not None and accuracy.values["labels"] == 400
    assert accuracy.values["low"] < accuracy.values["accuracy"] < accuracy.values["high"] < 0.93
    assert accuracy.values["expected"] == 0.95
    latency = check.finding("latency")
    assert latency is not None and latency.values == {"value": 0.9, "limit": 0.5}

    later = replace(result, checked_at=result.checked_at + HISTORY + timedelta(minutes=1))
    await kept.save_check("fraud", "prod", later)
    everything = await kept.checks_since("fraud", "prod", datetime(2000, 1, 1, tzinfo=UTC))
    assert later.checked_at in [c.checked_at for c in everything]
    assert result.checked_at not in [c.checked_at for c in everything]


async def test_the_daily_digest_is_shared_once_a_day_with_its_chart_and_summary(
    sandbox: Sandbox,
) -> None:
    # the first round after start sends today's (the digest time, 00:00 UTC, has passed)
    async def sent_once() -> bool:
        return len(digests_of(sandbox)) == 1

    await eventually(sent_once, timeout=30)
    today = datetime.now(UTC).date()
    first = digests_of(sandbox)[0]
    assert first.channel == sandbox.slack.workspace.channel_id("#ml-fraud")
    assert first.files[0]["name"] == f"fraud-prod-digest-{today.isoformat()}.png"
    assert (sandbox.slack.files.data(first.files[0]["id"]) or b"").startswith(PNG)
    assert first.text.startswith("*Daily digest of fraud/prod* (last 24 h, ")

    await deployed(sandbox)
    put_traffic(sandbox, shift=1.0, right=0.6, latency=0.9)
    await monitor(sandbox).check("fraud", "prod")
    await monitor(sandbox).round()  # checked and sent today: nothing more
    await sandbox.restart()
    await monitor(sandbox).round()  # a new bot on the same store: still sent
    assert len(digests_of(sandbox)) == 1

    tomorrow = datetime.combine(today + timedelta(days=1), time(0, 0, 1), UTC)
    wired = digests(sandbox)
    next_day = Digests(wired.settings, wired.store, wired.files, clock=lambda: tomorrow)
    await next_day.round()
    await next_day.round()
    shared = digests_of(sandbox)
    assert len(shared) == 2
    second = shared[1]
    assert second.files[0]["name"] == f"fraud-prod-digest-{tomorrow.date().isoformat()}.png"
    png = sandbox.slack.files.data(second.files[0]["id"])
    assert png is not None and png.startswith(PNG) and len(png) > 20_000
    since = tomorrow - timedelta(days=1)
    deploys = await sandbox.bot.store.deployments.history("fraud", "prod")
    marks = ", ".join(
        f"#{d.id}" for d in reversed(deploys) if d.finished_at and d.finished_at >= since
    )
    lines = second.text.splitlines()
    assert lines[0] == "*Daily digest of fraud/prod* (last 24 h, 2 checks)"
    assert lines[1] == "Drift: 2 of 3 drifted: amount, prediction"
    assert lines[2].startswith("Production accuracy: 0.5") and "on 400 labels" in lines[2]
    assert lines[2].endswith("vs 0.950 on the test set")
    assert lines[3] == f"Deploys: {marks or 'none'}"
    assert lines[4] == "Open incidents: 3"
    assert await MonitoringStore(sandbox.bot.store.db).digest_day("fraud", "prod") == (
        tomorrow.date().isoformat()
    )


async def test_a_digest_shared_by_an_attempt_that_died_before_recording_it_is_not_shared_again(
    sandbox: Sandbox,
) -> None:
    async def sent_once() -> bool:
        return len(digests_of(sandbox)) == 1

    await eventually(sent_once, timeout=30)  # today's
    tomorrow = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(0, 0, 1), UTC)
    wired = digests(sandbox)
    day = tomorrow.date().isoformat()
    # what a bot killed between the upload and recording the day left behind
    earlier = await wired.files.upload_file(
        "#ml-fraud", f"fraud-prod-digest-{day}.png", PNG, "fraud/prod digest", "digest"
    )
    uploads = len(sandbox.slack.calls_to("files.completeUploadExternal"))
    next_day = Digests(wired.settings, wired.store, wired.files, clock=lambda: tomorrow)
    await next_day.round()
    await next_day.round()
    assert len(sandbox.slack.calls_to("files.completeUploadExternal")) == uploads
    assert len(digests_of(sandbox)) == 2
    assert await MonitoringStore(sandbox.bot.store.db).digest_day("fraud", "prod") == day
    assert await next_day.send("fraud", "prod", day) == earlier  # found again, not shared
