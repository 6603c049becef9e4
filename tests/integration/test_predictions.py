"""PredictionLogs against a real moto server (S3): prediction logs and labels streamed from
hour partitions (plain and gzip), folded into the reference's bins and joined by id."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain.monitoring.profiles import build_reference
from bot.domain.monitoring.records import S3Prefix, Window
from bot.domain.monitoring.reference import Reference
from bot.domain.monitoring.window import WindowCounts
from bot.errors import ExternalError
from integrations.aws.objects import Connect
from integrations.aws.predictions import PredictionLogs
from tests.moto_server import MotoServer, moto_fixtures

moto_server, moto = moto_fixtures()
BUCKET = "ml-logs"
PREDICTIONS = S3Prefix(BUCKET, "fraud/prod/predictions/")
LABELS = S3Prefix(BUCKET, "fraud/prod/labels/")
START = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(minutes=15))


def stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def record(rng: random.Random, number: int, when: datetime) -> dict[str, Any]:
    amount = round(rng.lognormvariate(3, 1), 2)
    return {
        "time": stamp(when),
        "id": f"req-{number}",
        "features": {"amount": amount, "country": rng.choice(["DE", "FR", "US"])},
        "prediction": "fraud" if amount > 100 else "ok",
    }


def reference() -> Reference:
    rng = random.Random(1)
    rows = [record(rng, i, START) for i in range(2000)]
    columns = {n: [r["features"][n] for r in rows] for n in ("amount", "country")}
    return build_reference(columns, [r["prediction"] for r in rows])


def put(s3: Any, key: str, lines: list[bytes], *, zipped: bool) -> None:
    body = b"\n".join(lines) + b"\n"
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(body) if zipped else body)


def dumps(records: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(r).encode() for r in records]


@pytest.fixture
def s3(moto: MotoServer) -> Any:
    client = moto.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def logs(moto: MotoServer) -> PredictionLogs:
    return PredictionLogs(moto.client("s3"), batch=100, backoff=0.01)


def in_window(rng: random.Random, first: int, count: int) -> list[dict[str, Any]]:
    return [
        record(rng, first + i, START + timedelta(seconds=rng.uniform(0, 899))) for i in range(count)
    ]


async def test_a_window_is_folded_from_plain_and_gzip_partitions(
    s3: Any, logs: PredictionLogs
) -> None:
    rng = random.Random(2)
    ref = reference()
    early, late = in_window(rng, 0, 700), in_window(rng, 700, 500)
    before = [record(rng, 5000 + i, START - timedelta(minutes=3)) for i in range(40)]
    put(s3, f"{PREDICTIONS.prefix}2025/06/01/10/a.jsonl.gz", dumps(before + early), zipped=True)
    junk = [b"not json", b"[1, 2]", b'{"time": "yesterday", "features": {}}', b'{"time": 0}']
    put(s3, f"{PREDICTIONS.prefix}2025/06/01/10/b.jsonl", dumps(late[:200]) + junk, zipped=False)
    put(s3, f"{PREDICTIONS.prefix}2025/06/01/10/c.jsonl", dumps(late[200:]), zipped=False)
    put(s3, f"{PREDICTIONS.prefix}2025/06/01/07/old.jsonl", dumps(before), zipped=False)

    scan = await logs.scan(ref, PREDICTIONS, WINDOW)

    expected = WindowCounts(ref)
    everything = early + late
    expected.add([r["features"] for r in everything], [r["prediction"] for r in everything])
    assert scan.objects == 3  # the 07:00 partition is not read
    assert scan.records == 1200 == scan.counts.rows
    assert scan.outside == 41  # 40 from before the window, and the epoch-0 line
    for name, tally in expected.tallies.items():
        assert scan.counts.tallies[name].counts.tolist() == tally.counts.tolist(), name
    assert sorted(scan.skipped.counts.values()) == [1, 1, 1]
    assert scan.skipped.examples["lines that are not JSON"].endswith("b.jsonl:201")


async def test_labels_are_joined_by_id(s3: Any, logs: PredictionLogs) -> None:
    rng = random.Random(3)
    records = in_window(rng, 0, 600)
    put(s3, f"{PREDICTIONS.prefix}2025/06/01/10/p.jsonl.gz", dumps(records), zipped=True)
    labels = []
    for r in records[:400]:  # 400 labelled; every 4th label disagrees with the prediction
        wrong = int(r["id"].split("-")[1]) % 4 == 0
        label = ("ok" if r["prediction"] == "fraud" else "fraud") if wrong else r["prediction"]
        labels.append({"time": "2025-06-02T09:00:00Z", "id": r["id"], "label": label})
    labels.append({"time": "2025-06-02T09:00:00Z", "id": "req-never-predicted", "label": "ok"})
    labels.append({"time": "2025-06-02T09:00:00Z", "label": "ok"})
    put(s3, f"{LABELS.prefix}2025/06/02/09/l.jsonl", dumps(labels), zipped=False)
    label_window = Window(START, START + timedelta(days=2))

    scan = await logs.scan(reference(), PREDICTIONS, WINDOW, LABELS, label_window)

    assert scan.labels is not None and scan.labels.rate == 1.0
    assert scan.labels.read == 401
    assert (scan.joined.labelled, scan.joined.correct) == (400, 300)
    assert list(scan.labels.skipped.counts.values()) == [1]


async def test_label_memory_is_bounded_by_an_unbiased_sample(moto: MotoServer, s3: Any) -> None:
    rng = random.Random(4)
    records = in_window(rng, 0, 3000)
    put(s3, f"{PREDICTIONS.prefix}2025/06/01/10/p.jsonl", dumps(records), zipped=False)
    labels = [
        {"time": stamp(START), "id": r["id"], "label": r["prediction"] if i % 5 else "other"}
        for i, r in enumerate(records)
    ]
    put(s3, f"{LABELS.prefix}2025/06/01/10/l.jsonl.gz", dumps(labels), zipped=True)
    logs = PredictionLogs(moto.client("s3"), batch=500, max_labels=400)

    scan = await logs.scan(reference(), PREDICTIONS, WINDOW, LABELS)

    assert scan.labels is not None
    assert scan.labels.read == 3000
    assert len(scan.labels.labels) <= 400
    assert scan.labels.rate <= 400 / 3000 * 2  # halved until the sample fits
    assert scan.joined.labelled == len(scan.labels.labels) >= 100
    assert abs(scan.joined.correct / scan.joined.labelled - 0.8) < 0.1  # 80% overall


async def test_a_corrupt_gzip_object_is_skipped_and_named(s3: Any, logs: PredictionLogs) -> None:
    rng = random.Random(5)
    good = gzip.compress(b"\n".join(dumps(in_window(rng, 0, 50))))
    s3.put_object(Bucket=BUCKET, Key=f"{PREDICTIONS.prefix}2025/06/01/10/cut.gz", Body=good[:-30])
    put(
        s3,
        f"{PREDICTIONS.prefix}2025/06/01/10/ok.jsonl",
        dumps(in_window(rng, 50, 20)),
        zipped=False,
    )

    scan = await logs.scan(reference(), PREDICTIONS, WINDOW)

    assert scan.records == 20 and scan.objects == 1
    (reason,) = scan.skipped.counts
    assert reason.startswith("objects that are not valid gzip")
    assert scan.skipped.examples[reason].endswith("cut.gz")


async def test_a_missing_bucket_is_a_clear_error(moto: MotoServer) -> None:
    logs = PredictionLogs(moto.client("s3"), attempts=2, backoff=0.01)
    with pytest.raises(ExternalError, match="NoSuchBucket"):
        await logs.scan(reference(), S3Prefix("no-such-bucket", "p/"), WINDOW)


async def test_a_flat_prefix_is_read_by_last_modified(moto: MotoServer, s3: Any) -> None:
    rng = random.Random(6)
    records = in_window(rng, 0, 30)
    put(s3, "flat/p1.jsonl", dumps(records), zipped=False)
    now = datetime.now(UTC)
    window = Window(now - timedelta(minutes=10), now + timedelta(minutes=1))
    for r in records:
        r["time"] = stamp(now - timedelta(minutes=5))
    put(s3, "flat/p2.jsonl", dumps(records), zipped=False)
    logs = PredictionLogs(moto.client("s3"), partitioned=False)

    scan = await logs.scan(reference(), S3Prefix(BUCKET, "flat/"), window)

    assert scan.objects == 2 and scan.records == 30 and scan.outside == 30


async def test_worker_processes_fold_what_one_process_folds(moto: MotoServer, s3: Any) -> None:
    rng = random.Random(7)
    records = in_window(rng, 0, 900)
    junk = [b"not json", b'{"time": "2025-06-01T10:01:00Z", "features": 3}', b'{"time": 0}']
    late = [record(rng, 9000, START + timedelta(minutes=20))]
    put(s3, f"{PREDICTIONS.prefix}2025/06/01/10/a.jsonl.gz", dumps(records[:400]), zipped=True)
    put(
        s3,
        f"{PREDICTIONS.prefix}2025/06/01/10/b.jsonl",
        dumps(records[400:700]) + junk,
        zipped=False,
    )
    put(s3, f"{PREDICTIONS.prefix}2025/06/01/10/c.jsonl", dumps(late + records[700:]), zipped=False)
    s3.put_object(Bucket=BUCKET, Key=f"{PREDICTIONS.prefix}2025/06/01/10/d.gz", Body=b"\x1f\x8bxx")
    labels = [
        {"time": stamp(START), "id": r["id"], "label": "ok" if i % 3 else "fraud"}
        for i, r in enumerate(records[::2])
    ]
    put(s3, f"{LABELS.prefix}2025/06/01/10/l.jsonl", dumps(labels), zipped=False)
    ref = reference()

    def reader(workers: int) -> PredictionLogs:
        return PredictionLogs(
            moto.client("s3"), batch=128, workers=workers, parallel_bytes=0, max_labels=200
        )

    alone = await reader(1).scan(ref, PREDICTIONS, WINDOW, LABELS)
    apart = await reader(2).scan(ref, PREDICTIONS, WINDOW, LABELS)

    assert apart.objects == alone.objects == 3 and apart.records == alone.records == 900
    assert apart.outside == alone.outside == 2
    for name, tally in alone.counts.tallies.items():
        assert apart.counts.tallies[name].counts.tolist() == tally.counts.tolist(), name
    assert list(apart.skipped.counts.items()) == list(alone.skipped.counts.items())
    assert apart.skipped.examples == alone.skipped.examples
    assert apart.skipped.examples['records without a "features" object'].endswith("b.jsonl:302")
    assert alone.labels is not None and alone.labels.rate < 1.0  # the sample halved
    assert (apart.joined.labelled, apart.joined.correct) == (
        alone.joined.labelled,
        alone.joined.correct,
    )
    assert alone.joined.labelled == len(alone.labels.labels) > 50


def test_a_worker_builds_a_client_like_the_bots_without_showing_its_keys(
    moto: MotoServer, s3: Any
) -> None:
    connect = Connect.like(moto.client("s3"))
    assert connect.endpoint_url == moto.endpoint_url and connect.region == "us-east-1"
    assert connect.credentials is not None and "testing" not in repr(connect)
    assert connect().list_buckets()["Buckets"][0]["Name"] == BUCKET
    with pytest.raises(ValueError, match="workers must be at least 1, not 0"):
        PredictionLogs(s3, workers=0)
