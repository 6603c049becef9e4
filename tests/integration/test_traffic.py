"""The sandbox's traffic generator through its console lines, into a real moto server, read
back with the bot's own readers (ObjectLines, PredictionLogs.scan) and statistics."""

from __future__ import annotations

import io
import statistics
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bot.config.loading import load_settings
from bot.config.settings import Settings
from bot.domain.monitoring.drift import drift
from bot.domain.monitoring.records import Skipped, Window, decode
from bot.domain.monitoring.reference import parse_reference
from bot.sandbox.console import Console, ConsoleError
from bot.sandbox.fixtures.samples import reference_json
from bot.sandbox.gitlab.projects import plan
from bot.sandbox.runner import sample_config
from bot.sandbox.slack import SlackStandIn
from bot.sandbox.traffic import MINUTES, ROWS, Traffic
from bot.sandbox.transcript import Transcript
from integrations.aws.objects import ObjectLines
from integrations.aws.predictions import PredictionLogs
from tests.moto_server import MotoServer, moto_fixtures

moto_server, moto = moto_fixtures()


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(sample_config(), env={})


@pytest.fixture
async def console(moto: MotoServer, settings: Settings) -> AsyncIterator[Console]:
    slack = SlackStandIn(bot_token="x", users=[], usergroups={}, channels={})
    async with aiohttp.ClientSession() as session:
        yield Console(
            "http://127.0.0.1:9",
            "secret",
            slack,
            Transcript(io.StringIO(), {}, {}),
            session,
            traffic=Traffic(settings, moto, seed=7),
        )


def window() -> Window:
    now = datetime.now(UTC)
    return Window(now - timedelta(minutes=MINUTES, seconds=5), now + timedelta(seconds=5))


async def scan(moto: MotoServer, console: Console, model: str = "fraud") -> Any:
    assert isinstance(console.traffic, Traffic)
    predictions, labels = console.traffic.where(model, "prod")
    reference = parse_reference(reference_json(model))
    logs = PredictionLogs(moto.client("s3"))
    return await logs.scan(reference, predictions, window(), labels=labels)


async def test_drift_line_shifts_the_feature_by_half_a_standard_deviation(
    moto: MotoServer, console: Console
) -> None:
    await console.execute("traffic fraud prod normal")
    await console.execute("traffic fraud prod drift amount +0.5sd")
    assert isinstance(console.traffic, Traffic)
    where, _ = console.traffic.where("fraud", "prod")
    s3 = moto.client("s3")
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=where.bucket, Prefix=where.prefix)["Contents"]
    ]
    assert all(k.endswith(".jsonl.gz") for k in keys)
    batches: dict[str, list[float]] = {}
    lines = ObjectLines(s3)
    for key in keys:
        batch = key.rpartition("/traffic-")[2]
        for line in lines.lines(where.bucket, key):
            record = decode(line, key, Skipped())
            assert record is not None
            batches.setdefault(batch, []).append(record["features"]["amount"])
    normal, shifted = (batches[b] for b in sorted(batches))
    assert len(normal) == len(shifted) == ROWS
    moved = (statistics.fmean(shifted) - statistics.fmean(normal)) / statistics.stdev(normal)
    assert 0.4 < moved < 0.6, moved  # 0.5 sd, give or take 3 standard errors


async def test_the_bots_reader_sees_the_drift_on_that_feature_only(
    moto: MotoServer, console: Console
) -> None:
    await console.execute("traffic fraud prod drift amount +0.5sd")
    found = await scan(moto, console)
    assert found.records == ROWS and not found.skipped.counts
    report = drift(found.counts)
    assert [f.name for f in report.drifted] == ["amount"]


async def test_normal_traffic_raises_no_drift_and_matches_the_test_set(
    moto: MotoServer, console: Console
) -> None:
    await console.execute("traffic fraud prod normal")
    found = await scan(moto, console)
    assert drift(found.counts).drifted == []
    assert found.joined.labelled == ROWS
    assert abs(found.joined.correct / ROWS - 0.93) < 0.03


async def test_accuracy_line_degrades_the_joined_accuracy(
    moto: MotoServer, console: Console
) -> None:
    await console.execute("traffic fraud prod accuracy -0.1")
    found = await scan(moto, console)
    assert abs(found.joined.correct / found.joined.labelled - 0.83) < 0.03


async def test_slow_line_puts_alb_latency_for_the_guarded_target_group(
    moto: MotoServer, console: Console, settings: Settings
) -> None:
    await console.execute("traffic fraud prod slow 300ms")
    ab = settings.models["fraud"].environments["prod"].ab
    assert ab is not None and ab.target_group_a
    now = datetime.now(UTC)
    answer = moto.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/ApplicationELB",
        MetricName="TargetResponseTime",
        Dimensions=[
            {"Name": "LoadBalancer", "Value": ab.lb_dimension},
            {"Name": "TargetGroup", "Value": ab.target_group_a.split(":", 5)[-1]},
        ],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum", "Average"],
    )
    points = answer["Datapoints"]
    assert points and max(p["Maximum"] for p in points) == pytest.approx(0.36)
    out = console.transcript.out
    assert isinstance(out, io.StringIO)
    assert "(traffic fraud/prod: latency 300 ms put for targetgroup/" in out.getvalue()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("traffic fraud", "usage: traffic <model> <env>"),
        ("traffic spam prod normal", "no traffic for model 'spam'; models: fraud, churn"),
        ("traffic fraud qa normal", "fraud has no environment 'qa'; environments: stg, prod"),
        (
            "traffic fraud prod drift price +1sd",
            "no feature 'price' in the traffic; features: amount",
        ),
        ("traffic fraud prod drift amount half", "'half': write a shift in standard deviations"),
        ("traffic fraud prod slow fast", "'fast': write a latency like 300ms or 1.5s"),
        ("traffic fraud prod accuracy lots", "'lots': accuracy takes a change like -0.1"),
    ],
)
async def test_bad_lines_say_what_is_wrong(console: Console, line: str, message: str) -> None:
    with pytest.raises(ConsoleError) as caught:
        await console.execute(line)
    assert message in str(caught.value)


def test_the_training_job_leaves_reference_json_of_the_no_drift_distribution() -> None:
    evaluate = next(job for job in plan("ml/fraud") if job.name == "evaluate")
    reference = parse_reference(evaluate.artifacts["reference.json"])
    assert set(reference.features) == {"amount", "age", "merchant_risk", "country"}
    assert reference.rows == 5000 and reference.meta == {"test_set": "fraud-test-v3"}
    assert reference.prediction is not None
