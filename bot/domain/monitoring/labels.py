"""Delayed ground truth held for the join with predictions, in bounded memory.

At most ``capacity`` labels are held. While the window has fewer, every label is kept. When it
has more, a uniform sample is kept instead: a label is held only when a hash of its id falls
below a threshold, and the threshold halves (dropping the labels above it) each time the
sample would grow past ``capacity``. Whether an id is sampled depends on the id alone, never on
the label or the prediction, so accuracy on the sample estimates accuracy on all labelled
predictions without bias; the confidence interval is computed on the sample's size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from bot.domain.monitoring.records import Skipped
from bot.domain.monitoring.reference import category

FULL = 1 << 64
CAPACITY = 200_000


def id_hash(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


def id_key(value: object) -> str | None:
    """A record's id as the join key: strings and whole numbers only."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


@dataclass
class LabelSample:
    capacity: int = CAPACITY
    threshold: int = FULL
    labels: dict[str, str] = field(default_factory=dict)
    read: int = 0  # labels seen, sampled or not
    skipped: Skipped = field(default_factory=Skipped)

    def add(self, record_id: object, label: object) -> bool:
        key, value = id_key(record_id), category(label)
        if key is None or value is None:
            return False
        self.read += 1
        if self.threshold < FULL and id_hash(key) >= self.threshold:
            return True
        self.labels[key] = value
        while len(self.labels) > self.capacity:
            self.threshold //= 2
            self.labels = {k: v for k, v in self.labels.items() if id_hash(k) < self.threshold}
        return True

    @property
    def rate(self) -> float:
        """The share of ids sampled."""
        return self.threshold / FULL


@dataclass
class Joined:
    """Predictions whose label is in the sample: how many, and how many were right."""

    labelled: int = 0
    correct: int = 0

    def add(self, sample: LabelSample, ids: list[Any], predictions: list[Any]) -> None:
        labels = sample.labels
        for record_id, predicted in zip(ids, predictions, strict=True):
            key = record_id if type(record_id) is str else id_key(record_id)
            if key is None or key not in labels:
                continue
            self.labelled += 1
            self.correct += category(predicted) == labels[key]

    def add_pairs(self, sample: LabelSample, pairs: list[tuple[str, str | None]]) -> None:
        """(id key, predicted category) pairs, as a worker process sends them back."""
        labels = sample.labels
        for key, predicted in pairs:
            if key in labels:
                self.labelled += 1
                self.correct += predicted == labels[key]

    def merge(self, other: Joined) -> None:
        self.labelled += other.labelled
        self.correct += other.correct
