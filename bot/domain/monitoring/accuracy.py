"""Production accuracy (predictions joined with their delayed labels) against the deployed
run's test-set accuracy: an alert only when a Wilson interval puts production clearly below."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

MIN_LABELS = 100
CONFIDENCE = 0.99
TOLERANCE = 0.02


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson(
    correct: int, total: int, confidence: float = 0.95, *, continuity: bool = True
) -> Interval:
    """The Wilson score interval for a proportion, two-sided at ``confidence``; with the
    continuity correction by default (Newcombe 1998, method 4), whose bounds stay closer to
    their stated level on a few hundred labels than the plain interval's."""
    if total <= 0:
        return Interval(0.0, 1.0)
    if not 0 <= correct <= total:
        raise ValueError(f"correct ({correct}) must be between 0 and total ({total})")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p, n, zz = correct / total, total, z * z
    if not continuity:
        centre = (p + zz / (2 * n)) / (1 + zz / n)
        half = z / (1 + zz / n) * math.sqrt(p * (1 - p) / n + zz / (4 * n * n))
        return Interval(max(0.0, centre - half), min(1.0, centre + half))
    q = 1 - p
    low = 2 * n * p + zz - 1 - z * math.sqrt(max(0.0, zz - 2 - 1 / n + 4 * p * (n * q + 1)))
    high = 2 * n * p + zz + 1 + z * math.sqrt(max(0.0, zz + 2 - 1 / n + 4 * p * (n * q - 1)))
    return Interval(
        0.0 if correct == 0 else max(0.0, low / (2 * (n + zz))),
        1.0 if correct == total else min(1.0, high / (2 * (n + zz))),
    )


@dataclass(frozen=True)
class AccuracyCheck:
    correct: int
    labelled: int
    expected: float  # the deployed run's test-set accuracy
    interval: Interval
    breached: bool
    note: str

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


def check_accuracy(
    correct: int,
    labelled: int,
    expected: float,
    *,
    confidence: float = CONFIDENCE,
    tolerance: float = TOLERANCE,
    min_labels: int = MIN_LABELS,
) -> AccuracyCheck:
    """Breached only with at least ``min_labels`` labels and the interval's upper bound below
    ``expected - tolerance``. ``confidence`` is one-sided: the upper bound of the two-sided
    interval at 1 - 2 * (1 - confidence), so a breach means production is below with that
    confidence."""
    interval = wilson(correct, labelled, 1 - 2 * (1 - confidence))
    floor = expected - tolerance
    if labelled < min_labels:
        note = f"{labelled} labelled predictions; at least {min_labels} are needed to judge"
        return AccuracyCheck(correct, labelled, expected, interval, False, note)
    breached = interval.high < floor
    verdict = "below" if breached else "not clearly below"
    note = (
        f"{correct}/{labelled} = {correct / labelled:.1%} (interval {interval.low:.1%}.."
        f"{interval.high:.1%}) is {verdict} the test set's {expected:.1%} - {tolerance:.1%}"
    )
    return AccuracyCheck(correct, labelled, expected, interval, breached, note)
