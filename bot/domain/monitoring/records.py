"""Prediction and label log records (JSON Lines, one object per line), checked and sorted into
a window: what the model service writes, documented in docs/monitoring.md. Pure."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import orjson

from bot.domain.monitoring.times import epochs

MAX_LINE_BYTES = 1024 * 1024
DECODER = json.JSONDecoder()
NO_TIME = 'records without a "time" (ISO 8601 or epoch seconds)'
NO_FEATURES = 'records without a "features" object'
S3_URL = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>[^\s]*))?")


@dataclass(frozen=True)
class Window:
    """Half-open [start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a monitoring window needs timezone-aware start and end")
        if self.end <= self.start:
            raise ValueError(f"a window must end after it starts ({self.start} .. {self.end})")

    @property
    def bounds(self) -> tuple[float, float]:
        return self.start.timestamp(), self.end.timestamp()


@dataclass(frozen=True)
class S3Prefix:
    """Where logs are: ``s3://bucket/some/prefix/``."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Prefix:
        match = S3_URL.fullmatch(url)
        if match is None:
            raise ValueError(
                f"{url!r} is not an S3 prefix: write s3://<bucket>/<prefix>/ "
                "(a bucket name of 3-63 lowercase letters, digits, dots and hyphens)"
            )
        prefix = match["prefix"] or ""
        return cls(match["bucket"], prefix if not prefix or prefix.endswith("/") else prefix + "/")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def epoch(value: object) -> float | None:
    """A record's ``time``: ISO 8601 (``Z`` or an offset; no offset means UTC) or epoch
    seconds. None when it is neither."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@dataclass
class Skipped:
    """Lines that were not used, counted by reason, with the first example of each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, where)

    def merge(self, other: Skipped) -> None:
        self.counts.update(other.counts)
        for reason, where in other.examples.items():
            self.examples.setdefault(reason, where)

    def lines(self) -> list[str]:
        return [
            f"{n} {reason} (first: {self.examples[reason]})" for reason, n in self.counts.items()
        ]


def objects(lines: Sequence[bytes]) -> list[dict[str, Any]] | None:
    """Every line as an object, when each one is a JSON object orjson reads; else None (then
    the lines are read one by one with ``decode``, which says what is wrong with which)."""
    if not lines or max(map(len, lines)) > MAX_LINE_BYTES:
        return None
    try:
        records = list(map(orjson.loads, lines))
    except orjson.JSONDecodeError:
        return None
    return records if set(map(type, records)) == {dict} else None


def decode(line: bytes, where: str, skipped: Skipped) -> dict[str, Any] | None:
    """One JSON Lines line as an object, or None (counted in ``skipped``)."""
    if len(line) > MAX_LINE_BYTES:
        skipped.add(f"lines longer than {MAX_LINE_BYTES} bytes", where)
        return None
    try:
        record = orjson.loads(line)  # about 3x the standard library's speed on these records
    except orjson.JSONDecodeError:
        try:  # what json also reads: NaN, Infinity, integers beyond 64 bits, lone surrogates
            record = DECODER.decode(line.decode("utf-8"))
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            if line.strip():
                skipped.add("lines that are not JSON", where)
            return None
    if not isinstance(record, dict):
        skipped.add("lines that are not JSON objects", where)
        return None
    return record


@dataclass
class PredictionBatch:
    """Predictions of one window, gathered a few thousand at a time for columnar counting."""

    start: float
    end: float
    skipped: Skipped
    features: list[dict[str, Any]] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    ids: list[Any] = field(default_factory=list)
    outside: int = 0

    def take(self, lines: Sequence[bytes], key: str, first: int) -> None:
        """Keeps the lines' records that are in the window and well formed; ``first`` is the
        number of the first line in the object. Column-wise when every line is a JSON object,
        else line by line; either way the same records are kept and the same lines counted."""
        records = objects(lines)
        if records is None:
            for number, line in enumerate(lines, start=first):
                record = decode(line, f"{key}:{number}", self.skipped)
                if record is not None:
                    self.accept(record, f"{key}:{number}")
            return
        self._columns(records, key, first)

    def _columns(self, records: list[dict[str, Any]], key: str, first: int) -> None:
        import numpy as np

        when = epochs(list(map(dict.get, records, repeat("time"))), epoch)
        features: list[Any] = list(map(dict.get, records, repeat("features")))
        timed = ~np.isnan(when)
        inside = timed & (when >= self.start) & (when < self.end)
        shaped = np.fromiter(map(isinstance, features, repeat(dict)), bool, len(features))
        for i in np.flatnonzero(~timed | (inside & ~shaped)).tolist():
            self.skipped.add(NO_TIME if not timed[i] else NO_FEATURES, f"{key}:{first + i}")
        self.outside += int(np.count_nonzero(timed & ~inside))
        kept = inside & shaped
        predictions = list(map(dict.get, records, repeat("prediction")))
        ids = list(map(dict.get, records, repeat("id")))
        if not kept.all():
            rows = np.flatnonzero(kept).tolist()
            features = [features[i] for i in rows]
            predictions = [predictions[i] for i in rows]
            ids = [ids[i] for i in rows]
        self.features.extend(features)
        self.predictions.extend(predictions)
        self.ids.extend(ids)

    def accept(self, record: dict[str, Any], where: str) -> bool:
        """Keeps a record that is in the window and well formed; True when kept."""
        when = epoch(record.get("time"))
        if when is None:
            self.skipped.add(NO_TIME, where)
            return False
        if not self.start <= when < self.end:
            self.outside += 1
            return False
        features = record.get("features")
        if not isinstance(features, dict):
            self.skipped.add(NO_FEATURES, where)
            return False
        self.features.append(features)
        self.predictions.append(record.get("prediction"))
        self.ids.append(record.get("id"))
        return True

    def clear(self) -> None:
        self.features.clear()
        self.predictions.clear()
        self.ids.clear()
