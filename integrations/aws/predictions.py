"""A monitoring window read from S3: prediction logs folded into the reference's bins as they
stream, and delayed labels joined by id in bounded memory (bot/domain/monitoring/labels.py).

Each object is folded into counts of its own, added to the window's only once it was read to
the end, so an object whose stream breaks is read again from the start (``attempts`` times)
without counting anything twice. Objects are folded in ``workers`` lanes at once: a thread of
this process and ``workers - 1`` worker processes (each streams its objects with its own S3
client and returns the counts; counts merge exactly, in key order); ``workers`` 1 folds them
in the thread only. Memory: per process one
chunk, one batch of ``batch`` lines and the counts; in this process at most ``max_labels``
labels; the workers hold a 4-byte hash per sampled label and send back only the predictions
whose id may have a label, joined here.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import structlog

from bot.domain.monitoring.labels import CAPACITY, Joined, LabelSample, id_key
from bot.domain.monitoring.records import (
    PredictionBatch,
    S3Prefix,
    Skipped,
    Window,
    decode,
    epoch,
)
from bot.domain.monitoring.reference import Reference, category
from bot.domain.monitoring.scan import WindowScan
from bot.domain.monitoring.window import WindowCounts
from bot.errors import ExternalError, NotFound
from integrations.aws.objects import CORRUPT, STREAM_ERRORS, Connect, ObjectLines

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = structlog.get_logger(__name__)
T = TypeVar("T")

BATCH = 5000
PARALLEL_BYTES = (
    16 * 1024 * 1024
)  # below, starting worker processes (~1 s) costs more than it saves
LATE = timedelta(minutes=20)  # Firehose buffers up to 15 minutes before it writes an object
SKEW = timedelta(minutes=5)  # producers' clocks ahead of S3's


def default_workers() -> int:
    return min(2, os.cpu_count() or 1)


@dataclass
class _Part:
    """One object's contribution, kept apart until the object was read to its end."""

    counts: WindowCounts
    joined: Joined = field(default_factory=Joined)
    skipped: Skipped = field(default_factory=Skipped)
    records: int = 0
    outside: int = 0
    candidates: list[tuple[str, str | None]] = field(default_factory=list)  # (id, prediction)


@dataclass(frozen=True)
class _Fold:
    """What a worker needs to fold one object (picklable)."""

    reference: Reference
    bucket: str
    key: str
    start: float
    end: float
    batch: int
    attempts: int
    backoff: float


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
        workers: int | None = None,
        parallel_bytes: int = PARALLEL_BYTES,
    ) -> None:
        self.client = client
        self.objects = ObjectLines(client)
        self.batch = batch
        self.attempts = attempts
        self.backoff = backoff
        self.max_labels = max_labels
        self.partitioned = partitioned
        self.workers = default_workers() if workers is None else workers
        self.parallel_bytes = parallel_bytes
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")

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
        sample = None
        if labels is not None:
            sample = await asyncio.to_thread(self.labels_sync, labels, labels_window or window)
        listed = await asyncio.to_thread(self._sized, predictions, window)
        start, end = window.bounds
        jobs = [
            _Fold(
                reference,
                predictions.bucket,
                key,
                start,
                end,
                self.batch,
                self.attempts,
                self.backoff,
            )
            for key, _ in listed
        ]
        size = sum(size for _, size in listed)
        if self.workers > 1 and len(jobs) > 1 and size >= self.parallel_bytes:
            parts = await self._in_processes(jobs, sample)
        else:
            parts = await asyncio.to_thread(lambda: [self._read(job, sample) for job in jobs])
        scan = WindowScan(WindowCounts(reference), labels=sample)
        for part, skipped in parts:
            scan.skipped.merge(skipped)
            if part is not None:
                _merge(scan, part, sample)
        log.info(
            "monitoring.scan", where=str(predictions), objects=scan.objects, records=scan.records
        )
        return scan

    async def _in_processes(
        self, jobs: list[_Fold], sample: LabelSample | None
    ) -> list[tuple[_Part | None, Skipped]]:
        """Objects taken in turn by ``workers`` lanes: ``workers - 1`` worker processes and a
        thread of this one (already loaded: a process less to pay for), results in job order."""
        connect = await asyncio.to_thread(Connect.like, self.client)
        hashes = None if sample is None else await asyncio.to_thread(label_hashes, sample)
        processes = min(self.workers, len(jobs)) - 1
        pool = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded process
            initializer=_start_worker,
            initargs=(connect, hashes),
        )
        loop = asyncio.get_running_loop()
        waiting = deque(enumerate(jobs))
        results: dict[int, tuple[_Part | None, Skipped]] = {}

        async def in_a_process() -> None:
            while waiting:
                n, job = waiting.popleft()
                results[n] = await loop.run_in_executor(pool, _fold_in_worker, job)

        async def in_this_process() -> None:
            while waiting:
                n, job = waiting.popleft()
                results[n] = await asyncio.to_thread(self._read, job, sample)

        try:
            lanes = [in_a_process() for _ in range(processes)]
            await asyncio.gather(in_this_process(), *lanes)
            return [results[n] for n in range(len(jobs))]
        finally:
            await asyncio.to_thread(partial(pool.shutdown, wait=True, cancel_futures=True))

    def labels_sync(self, where: S3Prefix, window: Window) -> LabelSample:
        """Labels that arrived in the window (by their ``time``), sampled to ``max_labels``."""
        sample = LabelSample(self.max_labels)
        start, end = window.bounds
        for key in self._keys(where, window):
            read = partial(self._labels, sample, where, key, start, end)
            sample.skipped.merge(_retried(key, read, sample.skipped, self) or Skipped())
        return sample

    def _keys(self, where: S3Prefix, window: Window) -> list[str]:
        return [key for key, _ in self._sized(where, window)]

    def _sized(self, where: S3Prefix, window: Window) -> list[tuple[str, int]]:
        return list(
            self.objects.sized(
                where, window.start - SKEW, window.end + LATE, partitioned=self.partitioned
            )
        )

    def _read(self, job: _Fold, sample: LabelSample | None) -> tuple[_Part | None, Skipped]:
        skipped = Skipped()
        return _retried(job.key, partial(fold, self.objects, job, sample), skipped, job), skipped

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


def _merge(scan: WindowScan, part: _Part, sample: LabelSample | None) -> None:
    scan.objects += 1
    scan.counts.merge(part.counts)
    scan.joined.merge(part.joined)
    if sample is not None and part.candidates:
        scan.joined.add_pairs(sample, part.candidates)
    scan.skipped.merge(part.skipped)
    scan.records += part.records
    scan.outside += part.outside


def fold(
    objects: ObjectLines,
    job: _Fold,
    sample: LabelSample | None,
    hashes: npt.NDArray[np.uint32] | None = None,
) -> _Part:
    """One object's lines folded, ``job.batch`` lines at a time. With ``sample`` the join is
    made here; with ``hashes`` (in a worker) the candidates for it are kept instead."""
    part = _Part(WindowCounts(job.reference))
    batch = PredictionBatch(job.start, job.end, skipped=part.skipped)
    lines = objects.lines(job.bucket, job.key)
    first = 1
    while chunk := list(islice(lines, job.batch)):
        batch.take(chunk, job.key, first)
        first += len(chunk)
        part.records += len(batch.features)
        part.counts.add(batch.features, batch.predictions)
        if sample is not None:
            part.joined.add(sample, batch.ids, batch.predictions)
        elif hashes is not None:
            part.candidates.extend(candidates(hashes, batch.ids, batch.predictions))
        batch.clear()
    part.outside = batch.outside
    return part


def label_hashes(sample: LabelSample) -> npt.NDArray[np.uint32]:
    """CRC-32 of each sampled label's id, sorted: a worker's filter for the join."""
    import numpy as np

    return np.unique(np.fromiter(map(_crc, sample.labels), np.uint32, len(sample.labels)))


def candidates(
    hashes: npt.NDArray[np.uint32], ids: Sequence[Any], predictions: Sequence[Any]
) -> list[tuple[str, str | None]]:
    """(id, prediction as a category) of the records whose id's hash is a label's: a superset
    of the joined ones, which the parent tells apart with the labels themselves."""
    import numpy as np

    keys = [i if type(i) is str else id_key(i) for i in ids]
    found = np.fromiter((_crc(k) if k else 0 for k in keys), np.uint32, len(keys))
    at = np.minimum(np.searchsorted(hashes, found), max(len(hashes) - 1, 0))
    hit = hashes[at] == found if len(hashes) else np.zeros(len(found), bool)
    rows = np.flatnonzero(hit).tolist()
    return [(key, category(predictions[i])) for i in rows if (key := keys[i])]


def _crc(key: str) -> int:
    return zlib.crc32(key.encode("utf-8", "surrogatepass"))


class _Attempts(Protocol):
    @property
    def attempts(self) -> int: ...
    @property
    def backoff(self) -> float: ...


def _retried(key: str, read: Callable[[], T], skipped: Skipped, how: _Attempts) -> T | None:
    """``read()`` again from the start when the stream breaks (``how.attempts`` times, waiting
    ``how.backoff`` doubling); None (and the reason in ``skipped``) when the object is gone or
    corrupt."""
    for attempt in range(1, how.attempts + 1):
        try:
            return read()
        except NotFound:
            return None  # removed between the listing and the read (lifecycle rules)
        except CORRUPT as exc:
            skipped.add(f"objects that are not valid gzip ({type(exc).__name__})", key)
            return None
        except (ExternalError, *STREAM_ERRORS) as exc:
            if attempt == how.attempts:
                raise ExternalError(
                    f"S3 object {key} could not be read after {attempt} attempts: "
                    f"{type(exc).__name__}"
                ) from None
            log.warning("monitoring.read_retry", key=key, attempt=attempt, error=type(exc).__name__)
            time.sleep(how.backoff * 2 ** (attempt - 1))
    return None


@dataclass
class _Worker:
    """A worker process's own S3 reader and the sampled labels' id hashes (None: no labels)."""

    objects: ObjectLines
    hashes: npt.NDArray[np.uint32] | None


_WORKER: list[_Worker] = []  # made once per worker process by _start_worker


def _start_worker(connect: Connect, hashes: npt.NDArray[np.uint32] | None) -> None:
    _WORKER.append(_Worker(ObjectLines(connect()), hashes))


def _fold_in_worker(job: _Fold) -> tuple[_Part | None, Skipped]:
    worker, skipped = _WORKER[0], Skipped()
    read = partial(fold, worker.objects, job, None, worker.hashes)
    return _retried(job.key, read, skipped, job), skipped


def window_ending(end: datetime, minutes: int) -> Window:
    """The ``minutes`` before ``end``."""
    return Window(end - timedelta(minutes=minutes), end)
