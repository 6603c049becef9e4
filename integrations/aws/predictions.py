"""A monitoring window read from S3: prediction logs folded into the reference's bins as they
stream, and delayed labels joined by id in bounded memory (bot/domain/monitoring/labels.py).

Each object is folded into counts of its own, added to the window's only once it was read to
the end, so an object whose stream breaks is read again from the start (``attempts`` times)
without counting anything twice. Memory: one chunk, one batch of ``batch`` records, the counts,
and at most ``max_labels`` labels, whatever the window's size.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import structlog

from bot.domain.monitoring.labels import CAPACITY, Joined, LabelSample
from bot.domain.monitoring.records import (
    PredictionBatch,
    S3Prefix,
    Skipped,
    Window,
    decode,
    epoch,
)
from bot.domain.monitoring.reference import Reference
from bot.domain.monitoring.scan import WindowScan
from bot.domain.monitoring.window import WindowCounts
from bot.errors import ExternalError, NotFound
from integrations.aws.objects import CORRUPT, STREAM_ERRORS, ObjectLines

log = structlog.get_logger(__name__)
T = TypeVar("T")

BATCH = 5000
LATE = timedelta(minutes=20)  # Firehose buffers up to 15 minutes before it writes an object
SKEW = timedelta(minutes=5)  # producers' clocks ahead of S3's


@dataclass
class _Part:
    """One object's contribution, kept apart until the object was read to its end."""

    counts: WindowCounts
    joined: Joined = field(default_factory=Joined)
    skipped: Skipped = field(default_factory=Skipped)
    records: int = 0
    outside: int = 0


class PredictionLogs:
    def __init__(
        self,
        client: Any,
        *,
        batch: int = BATCH,
        attempts: int = 3,
        backoff: float = 0.5,
        max_labels: int = CAPACITY,
        partitioned: bool = True,
    ) -> None:
        self.objects = ObjectLines(client)
        self.batch = batch
        self.attempts = attempts
        self.backoff = backoff
        self.max_labels = max_labels
        self.partitioned = partitioned

    async def scan(
        self,
        reference: Reference,
        predictions: S3Prefix,
        window: Window,
        labels: S3Prefix | None = None,
        labels_window: Window | None = None,
    ) -> WindowScan:
        """Counts of the window's predictions; with ``labels``, the join of the labels that
        arrived in ``labels_window`` (default: the window) with those predictions."""
        return await asyncio.to_thread(
            self.scan_sync, reference, predictions, window, labels, labels_window
        )

    def scan_sync(
        self,
        reference: Reference,
        predictions: S3Prefix,
        window: Window,
        labels: S3Prefix | None = None,
        labels_window: Window | None = None,
    ) -> WindowScan:
        sample = self.labels_sync(labels, labels_window or window) if labels else None
        scan = WindowScan(WindowCounts(reference), labels=sample)
        for key in self._keys(predictions, window):
            fold = partial(self._fold, reference, predictions, key, window, sample)
            part = self._retried(key, fold, scan.skipped)
            if part is None:
                continue
            scan.objects += 1
            scan.counts.merge(part.counts)
            scan.joined.merge(part.joined)
            scan.skipped.merge(part.skipped)
            scan.records += part.records
            scan.outside += part.outside
        log.info(
            "monitoring.scan", where=str(predictions), objects=scan.objects, records=scan.records
        )
        return scan

    def labels_sync(self, where: S3Prefix, window: Window) -> LabelSample:
        """Labels that arrived in the window (by their ``time``), sampled to ``max_labels``."""
        sample = LabelSample(self.max_labels)
        start, end = window.bounds
        for key in self._keys(where, window):
            read = partial(self._labels, sample, where, key, start, end)
            sample.skipped.merge(self._retried(key, read, sample.skipped) or Skipped())
        return sample

    def _keys(self, where: S3Prefix, window: Window) -> list[str]:
        return list(
            self.objects.keys(
                where, window.start - SKEW, window.end + LATE, partitioned=self.partitioned
            )
        )

    def _fold(
        self,
        reference: Reference,
        where: S3Prefix,
        key: str,
        window: Window,
        sample: LabelSample | None,
    ) -> _Part:
        part = _Part(WindowCounts(reference))
        batch = PredictionBatch(*window.bounds, skipped=part.skipped)
        for number, line in enumerate(self.objects.lines(where.bucket, key), start=1):
            record = decode(line, f"{key}:{number}", part.skipped)
            kept = record is not None and batch.accept(record, f"{key}:{number}")
            if kept and len(batch.features) >= self.batch:
                self._count(part, batch, sample)
        self._count(part, batch, sample)
        part.outside = batch.outside
        return part

    @staticmethod
    def _count(part: _Part, batch: PredictionBatch, sample: LabelSample | None) -> None:
        part.records += len(batch.features)
        part.counts.add(batch.features, batch.predictions)
        if sample is not None:
            part.joined.add(sample, batch.ids, batch.predictions)
        batch.clear()

    def _labels(
        self, sample: LabelSample, where: S3Prefix, key: str, start: float, end: float
    ) -> Skipped:
        """Adds the object's labels to the sample; its unusable lines are returned."""
        skipped = Skipped()
        for number, line in enumerate(self.objects.lines(where.bucket, key), start=1):
            at = f"{key}:{number}"
            record = decode(line, at, skipped)
            if record is None:
                continue
            when = epoch(record.get("time"))
            if when is None:
                skipped.add('labels without a "time" (ISO 8601 or epoch seconds)', at)
            elif start <= when < end and not sample.add(record.get("id"), record.get("label")):
                skipped.add('labels without an "id" (string or number) or a "label"', at)
        return skipped

    def _retried(self, key: str, read: Callable[[], T], skipped: Skipped) -> T | None:
        """``read()`` again from the start when the stream breaks; None (and the reason in
        ``skipped``) when the object is gone or corrupt."""
        for attempt in range(1, self.attempts + 1):
            try:
                return read()
            except NotFound:
                return None  # removed between the listing and the read (lifecycle rules)
            except CORRUPT as exc:
                skipped.add(f"objects that are not valid gzip ({type(exc).__name__})", key)
                return None
            except (ExternalError, *STREAM_ERRORS) as exc:
                if attempt == self.attempts:
                    raise ExternalError(
                        f"S3 object {key} could not be read after {attempt} attempts: "
                        f"{type(exc).__name__}"
                    ) from None
                log.warning(
                    "monitoring.read_retry", key=key, attempt=attempt, error=type(exc).__name__
                )
                time.sleep(self.backoff * 2 ** (attempt - 1))
        return None


def window_ending(end: datetime, minutes: int) -> Window:
    """The ``minutes`` before ``end``."""
    return Window(end - timedelta(minutes=minutes), end)
