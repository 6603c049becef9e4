"""Model monitoring end to end, through the sandbox: the reference kept with a trained run,
checks against moto's S3 and CloudWatch, incident cards in the channel (the Slack stand-in),
their buttons (signed clicks) and `/deploy fraud health prod`."""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.domain.deploys import Deployment, DeployState
from bot.domain.monitoring.incidents import IncidentState, Status
from bot.domain.monitoring.profiles import build_reference
from bot.domain.runs import Run, RunState
from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox, running_sandbox, sample_config
from bot.services.monitoring.monitor import Monitor
from bot.store.monitoring import MonitoringStore
from tests.helpers import eventually
from tests.moto_server import MotoServer

BUCKET = "ml-logs"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/fraud-prod/0123456789abcdef"
LB = "app/ml-alb/50dc6c495c0c9188"
DIMS = [
    {"Name": "LoadBalancer", "Value": LB},
    {"Name": "TargetGroup", "Value": "targetgroup/fraud-prod/0123456789abcdef"},
]
MONITORING = {
    "interval_minutes": 60,
    "thresholds": {"min_labels": 100},
    "environments": {
        "prod": {
            # moto computes no percentiles (GetMetricData with p99 answers 500): Average here
            "cloudwatch": {"target_group": TG, "load_balancer": LB, "latency_seconds": 0.5,
                           "latency_stat": "Average", "max_5xx_rate": 0.05, "min_requests": 20},
            "predictions": f"s3://{BUCKET}/fraud/prod/predictions/",
            "labels": f"s3://{BUCKET}/fraud/prod/labels/",
        }
    },
}  # fmt: skip


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    data = yaml.safe_load(sample_config().read_text())
    data["models"]["fraud"]["owners"] = ["S0FRAUDOWNERS", "U0DAVE"]
    data["models"]["fraud"]["monitoring"] = MONITORING
    data["models"]["fraud"]["environments"]["prod"]["rollback_approvals"] = 1
    config = tmp_path / "bot.yaml"
    config.write_text(yaml.safe_dump(data))
    async with running_sandbox(config) as running:
        yield running


@pytest.fixture
async def console(sandbox: Sandbox) -> AsyncIterator[Console]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        yield sandbox.console(io.StringIO(), http)


def aws(sandbox: Sandbox) -> MotoServer:
    assert sandbox.aws is not None
    return sandbox.aws


def monitor(sandbox: Sandbox) -> Monitor:
    loop = dict(sandbox.bot.followers)["monitoring"]
    found = getattr(loop, "__self__", None)
    assert isinstance(found, Monitor)
    return found


def rows(rng: random.Random, count: int, shift: float, end: datetime) -> list[dict[str, Any]]:
    found = []
    for n in range(count):
        amount = rng.gauss(50 + shift * 10, 10)
        found.append(
            {
                "time": (end - timedelta(seconds=rng.uniform(1, 800))).isoformat(),
                "id": f"req-{shift}-{n}",
                "features": {"amount": round(amount, 2), "country": rng.choice(["DE", "FR"])},
                "prediction": "fraud" if amount > 65 else "ok",
            }
        )
    return found


def reference_profile() -> dict[str, Any]:
    rng = random.Random(7)
    sample = rows(rng, 5000, 0.0, datetime.now(UTC))
    columns = {n: [r["features"][n] for r in sample] for n in ("amount", "country")}
    return build_reference(columns, [r["prediction"] for r in sample]).to_json()


def put_lines(s3: Any, key: str, records: list[dict[str, Any]]) -> None:
    body = gzip.compress(b"\n".join(json.dumps(r).encode() for r in records) + b"\n")
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def put_traffic(
    sandbox: Sandbox, *, shift: float, right: float, latency: float, points: int = 1
) -> None:
    """A window of predictions (``amount`` shifted by ``shift`` sd), labels agreeing with
    ``right`` of them, and the ALB's metrics (``points`` latency samples) for the last minutes."""
    now = datetime.now(UTC)
    rng = random.Random(int(shift * 10) + 1)
    s3 = aws(sandbox).client("s3")
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    predictions = rows(rng, 2000, shift, now)
    hour = f"{now:%Y/%m/%d/%H}/"
    put_lines(s3, f"fraud/prod/predictions/{hour}p-{shift}.jsonl.gz", predictions)
    labels = [
        {"time": now.isoformat(), "id": p["id"],
         "label": p["prediction"] if rng.random() < right else "other"}
        for p in predictions[:400]
    ]  # fmt: skip
    put_lines(s3, f"fraud/prod/labels/{hour}l-{shift}.jsonl.gz", labels)
    aws(sandbox).client("cloudwatch").put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            *[{"MetricName": "TargetResponseTime", "Dimensions": DIMS, "Value": latency,
               "Timestamp": now - timedelta(seconds=20)}] * points,
            {"MetricName": "RequestCount", "Dimensions": DIMS, "Value": 500.0,
             "Timestamp": now - timedelta(seconds=20)},
            {"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": DIMS, "Value": 1.0,
             "Timestamp": now - timedelta(seconds=20)},
        ],
    )  # fmt: skip


async def deployed(sandbox: Sandbox) -> Deployment:
    """Run #1 (accuracy 0.95, with a reference) live in prod as deploy #2, run-less deploy #1
    before it; the loop's first check (nothing to compare yet) is done."""
    store = sandbox.bot.store
    kept = MonitoringStore(store.db)

    async def first_check() -> bool:
        return await kept.last_check("fraud", "prod") is not None

    await eventually(first_check, timeout=20)
    now = datetime.now(UTC)
    run = await store.runs.create(
        Run(0, "fraud", "gitlab", RunState.SUCCEEDED, "U0ALICE", "main", now - timedelta(days=1),
            sha="a" * 40, metrics={"accuracy": 0.95})
    )  # fmt: skip
    await kept.keep_reference(run.id, "test", reference_profile(), None, now)
    for n, run_id in ((1, None), (2, run.id)):
        await store.deployments.create(
            Deployment(0, "fraud", "prod", "deploy", DeployState.SUCCEEDED, "U0ALICE",
                       now - timedelta(hours=3 - n), f"v{n}", f"sha256:{n:064x}",
                       run_id=run_id, revision=n, finished_at=now - timedelta(hours=3 - n))
        )  # fmt: skip
    live = await store.deployments.last_good("fraud", "prod")
    assert live is not None and live.id == 2
    return live


def incident_cards(sandbox: Sandbox) -> list[Any]:
    return [m for m in sandbox.slack.messages if "(incident #" in m.text]


async def cards_say(sandbox: Sandbox, *needles: str) -> list[Any]:
    """The incident cards once the outbox has put each needle on one of them."""

    async def shown() -> bool:
        await sandbox.bot.notifier.flush()
        texts = [c.text for c in incident_cards(sandbox)]
        return all(any(n in t for t in texts) for n in needles)

    await eventually(shown, timeout=20)
    return incident_cards(sandbox)


async def test_a_trained_run_keeps_the_reference_beside_its_metrics(
    sandbox: Sandbox, console: Console
) -> None:
    await console.execute("/train fraud ref=main")
    kept = MonitoringStore(sandbox.bot.store.db)

    async def judged() -> bool:
        run = await sandbox.bot.store.runs.get(1)
        return run is not None and run.verdict is not None

    await eventually(judged, timeout=30)
    reference = await kept.reference(1)
    assert reference is not None and reference.error is None, reference and reference.error
    assert reference.profile is not None
    assert reference.profile["format"] == "mlops-bot/reference@1"
    assert "artifact reference.json" in reference.source


async def test_breaches_open_one_card_per_incident_and_a_healthy_check_resolves_them(
    sandbox: Sandbox, console: Console
) -> None:
    await deployed(sandbox)
    put_traffic(sandbox, shift=1.0, right=0.6, latency=0.9)
    result = await monitor(sandbox).check("fraud", "prod")

    statuses = {f.kind: f.status for f in result.findings}
    assert statuses == {"latency": Status.BREACHED, "5xx": Status.OK,
                        "drift": Status.BREACHED, "accuracy": Status.BREACHED}  # fmt: skip
    cards = await cards_say(sandbox, "#1)", "#2)", "#3)")
    assert sorted(c.text for c in cards) == [
        ":rotating_light: fraud/prod: accuracy breached (incident #3)",
        ":rotating_light: fraud/prod: drift breached (incident #2)",
        ":rotating_light: fraud/prod: latency breached (incident #1)",
    ]
    latency = json.dumps(next(c for c in cards if "latency" in c.text).blocks)
    assert "Average latency: 0.9 s &gt; SLO 0.5 s (+80%)" in latency
    assert "Live when it began: deploy #2 (run #1)" in latency
    assert "after it was verified" in latency
    assert "Roll back to deploy #1" in latency and "Snooze 24h" in latency
    assert "<!subteam^S0FRAUDOWNERS> <@U0DAVE>" in latency
    drift_card = json.dumps(next(c for c in cards if "drift" in c.text).blocks)
    assert "amount (p=" in drift_card

    # the same breach again: the same cards, edited, no new message
    again = await monitor(sandbox).check("fraud", "prod")
    assert len(again.breaches) == 3
    await sandbox.bot.notifier.flush()
    assert len(incident_cards(sandbox)) == 3
    incident = await MonitoringStore(sandbox.bot.store.db).incident(1)
    assert incident is not None and incident.checks == 2

    # healthy again: every incident resolved in place
    await aws_reset_s3(sandbox)
    put_traffic(sandbox, shift=0.0, right=0.97, latency=0.1, points=9)
    await monitor(sandbox).round()  # not due: the interval is an hour
    last = await MonitoringStore(sandbox.bot.store.db).last_check("fraud", "prod")
    assert last is not None and last.checked_at == again.checked_at
    await monitor(sandbox).check("fraud", "prod")
    cards = await cards_say(sandbox, "#1, resolved", "#2, resolved", "#3, resolved")
    texts = sorted(c.text for c in cards)
    assert all("resolved" in t for t in texts) and len(texts) == 3, texts


async def aws_reset_s3(sandbox: Sandbox) -> None:
    s3 = aws(sandbox).client("s3")
    for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])


async def test_buttons_acknowledge_snooze_and_roll_back_through_the_approval_flow(
    sandbox: Sandbox, console: Console
) -> None:
    await deployed(sandbox)
    put_traffic(sandbox, shift=0.0, right=0.97, latency=0.9)
    await monitor(sandbox).check("fraud", "prod")
    assert [c.text for c in await cards_say(sandbox, "#1)")] == [
        ":rotating_light: fraud/prod: latency breached (incident #1)"
    ]
    store = MonitoringStore(sandbox.bot.store.db)

    await console.execute("as @dave")  # a viewer: may look, not acknowledge
    await console.execute("click Acknowledge")
    incident = await store.incident(1)
    assert incident is not None and incident.state == IncidentState.OPEN

    await console.execute("as @alice")
    await console.execute("click Acknowledge")

    async def acknowledged() -> bool:
        found = await store.incident(1)
        return found is not None and found.state == IncidentState.ACKNOWLEDGED

    await eventually(acknowledged)
    await sandbox.bot.notifier.flush()
    card = json.dumps(incident_cards(sandbox)[0].blocks)
    assert "acknowledged by <@U0ALICE>" in card and 'Acknowledge"' not in card

    await console.execute("click Snooze 24h")

    async def snoozed() -> bool:
        found = await store.incident(1)
        return found is not None and found.snoozed_until is not None

    await eventually(snoozed)

    await console.execute("click Roll back to deploy #1")

    async def rollback_waits() -> bool:
        d = await sandbox.bot.store.deployments.get(3)
        return d is not None and d.kind == "rollback" and d.target_deploy == 1

    await eventually(rollback_waits)
    d = await sandbox.bot.store.deployments.get(3)
    assert d is not None and d.requester == "U0ALICE" and d.revision == 1
    assert d.state == DeployState.AWAITING_APPROVAL  # prod's rollback_approvals: 1


async def test_health_shows_the_last_check_and_open_incidents(
    sandbox: Sandbox, console: Console
) -> None:
    await deployed(sandbox)
    put_traffic(sandbox, shift=0.0, right=0.97, latency=0.9)
    await monitor(sandbox).check("fraud", "prod")
    await console.execute("/deploy fraud health prod")
    reply = [m for m in sandbox.slack.messages if m.ephemeral_to == "U0ALICE"][-1]
    text = json.dumps(reply.blocks)
    assert "Health of fraud/prod" in text and "deploy #2" in text
    assert ":red_circle: *Average latency*: 0.9 s &gt; SLO 0.5 s" in text
    assert ":large_green_circle: *drift*: none of" in text
    assert ":large_green_circle: *accuracy*:" in text
    assert "#1 latency (open)" in text

    await console.execute("/deploy fraud health stg")
    reply = [m for m in sandbox.slack.messages if m.ephemeral_to == "U0ALICE"][-1]
    assert "fraud/stg is not monitored" in reply.text + json.dumps(reply.blocks)
