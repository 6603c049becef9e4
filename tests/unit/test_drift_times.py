"""Records read a batch at a time give exactly what reading them one by one gives: the same
epoch seconds for every ``time`` value, the same records kept, the same lines counted."""

from __future__ import annotations

import json
import math
import random

from bot.domain.monitoring.records import PredictionBatch, Skipped, decode, epoch
from bot.domain.monitoring.times import epochs


def stamps(rng: random.Random, count: int) -> list[object]:
    values: list[object] = []
    for _ in range(count):
        year = rng.choice([1, 1969, 1970, 2024, 2025, 2255, 2300, 9999, 0])
        value = (
            f"{year:04}-{rng.randint(0, 13):02}-{rng.randint(0, 32):02}T"
            f"{rng.randint(0, 25):02}:{rng.randint(0, 60):02}:{rng.randint(0, 60):02}"
        )
        if rng.random() < 0.4:
            value += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 8)))
        value += rng.choice(["", "Z", "Z", "+02:00", "x"])
        if rng.random() < 0.05:
            value = value.replace("T", " ")
        if rng.random() < 0.03:
            value = value[: rng.randint(0, len(value))]
        values.append(value)
    return [*values, None, 5, 1.5, True, "é", math.nan, "2025-06-01T10:15:30.Z", ""]


def test_batch_epochs_are_exactly_those_of_one_by_one_parsing() -> None:
    values = stamps(random.Random(1), 20_000)
    batch = epochs(values, epoch)
    for value, got in zip(values, batch.tolist(), strict=True):
        want = epoch(value)
        assert (want is None and math.isnan(got)) or got == want, value
    assert 0.3 < sum(map(math.isfinite, batch.tolist())) / len(values) < 0.9


def test_a_chunk_keeps_and_counts_what_line_by_line_reading_does() -> None:
    rng = random.Random(2)
    lines = []
    for i in range(500):
        record: dict[str, object] = {"time": rng.choice(stamps(rng, 1)), "id": f"r{i}"}
        if rng.random() < 0.2:
            record["time"] = f"2025-06-01T10:{rng.randint(0, 59):02}:00.5Z"
        if rng.random() < 0.9:
            record["features"] = {"a": i} if rng.random() < 0.9 else [i]
        record["prediction"] = "ok"
        lines.append(json.dumps(record).encode())
    start, end = epoch("1970-01-01T00:00:00Z"), epoch("2025-06-01T10:30:00Z")
    assert start is not None and end is not None
    chunked = PredictionBatch(start, end, Skipped())
    chunked.take(lines, "k", 7)
    single = PredictionBatch(start, end, Skipped())
    for number, line in enumerate(lines, start=7):
        found = decode(line, f"k:{number}", single.skipped)
        assert found is not None
        single.accept(found, f"k:{number}")

    assert chunked.features == single.features and chunked.ids == single.ids
    assert chunked.outside == single.outside > 0 and len(single.features) > 100
    assert list(chunked.skipped.counts.items()) == list(single.skipped.counts.items())
    assert chunked.skipped.examples == single.skipped.examples
    assert len(single.skipped.counts) == 2


def test_a_chunk_with_a_line_that_is_not_an_object_is_read_line_by_line() -> None:
    good = b'{"time": "2025-06-01T10:00:00Z", "features": {"a": 1}}'
    batch = PredictionBatch(0.0, 2e9, Skipped())
    batch.take([good, b"[1]", b"", b"nope", good], "k", 1)
    assert len(batch.features) == 2
    assert batch.skipped.examples == {
        "lines that are not JSON objects": "k:2",
        "lines that are not JSON": "k:4",
    }
