"""Production accuracy against the test set: the Wilson interval, and when it may alert."""

from __future__ import annotations

import pytest
from scipy.stats import binom

from bot.domain.monitoring.accuracy import check_accuracy, wilson
from bot.domain.monitoring.labels import Joined, LabelSample


def test_wilson_matches_the_textbook_values() -> None:
    # Newcombe (1998), 81/263 at 95%: 0.2553 .. 0.3662 plain, 0.2535 .. 0.3682 corrected
    plain, corrected = wilson(81, 263, continuity=False), wilson(81, 263)
    assert (plain.low, plain.high) == pytest.approx((0.2553, 0.3662), abs=5e-4)
    assert (corrected.low, corrected.high) == pytest.approx((0.2535, 0.3682), abs=5e-4)
    assert wilson(0, 10).low == 0.0 and wilson(10, 10).high == 1.0
    assert wilson(0, 0).low == 0.0 and wilson(0, 0).high == 1.0


def test_twelve_labels_never_alert_even_all_wrong() -> None:
    check = check_accuracy(0, 12, expected=0.95)
    assert not check.breached and "at least 100 are needed" in check.note


def test_a_clear_drop_alerts_and_a_noisy_one_does_not() -> None:
    clear = check_accuracy(800, 1000, expected=0.95)  # 80% of 1,000 against 95%
    noisy = check_accuracy(185, 200, expected=0.95)  # 92.5% of 200: within the noise
    assert clear.breached and "is below the test set's 95.0%" in clear.note
    assert not noisy.breached and "not clearly below" in noisy.note


def false_alarm_rate(labels: int, accuracy: float, tolerance: float) -> float:
    """The exact chance of an alert when production is exactly as accurate as the test set."""
    return sum(
        float(binom.pmf(c, labels, accuracy))
        for c in range(labels + 1)
        if check_accuracy(c, labels, accuracy, tolerance=tolerance).breached
    )


@pytest.mark.parametrize("labels", [100, 400, 2000])
@pytest.mark.parametrize("accuracy", [0.7, 0.9, 0.99])
def test_false_alarms_stay_near_the_confidence_and_vanish_with_the_tolerance(
    labels: int, accuracy: float
) -> None:
    # one-sided 99%: nominally 1%; Wilson is approximate (up to ~1.8% at 100 labels, 99%)
    assert false_alarm_rate(labels, accuracy, tolerance=0.0) <= 0.02
    assert false_alarm_rate(labels, accuracy, tolerance=0.02) <= 0.0025  # the default


def test_labels_join_predictions_by_id_and_value() -> None:
    sample = LabelSample()
    for i in range(10):
        assert sample.add(f"r{i}", "fraud" if i < 3 else "ok")
    assert not sample.add(None, "ok") and not sample.add("r99", None)
    joined = Joined()
    joined.add(sample, ["r0", "r1", "r5", "nope", 7], ["fraud", "ok", "ok", "ok", "ok"])
    assert (joined.labelled, joined.correct) == (3, 2)


def test_label_sampling_keeps_the_same_ids_whatever_the_order() -> None:
    ids = [f"id-{i}" for i in range(5000)]
    forward, backward = LabelSample(capacity=300), LabelSample(capacity=300)
    for i in ids:
        forward.add(i, "x")
    for i in reversed(ids):
        backward.add(i, "x")
    assert forward.rate == backward.rate < 300 / 5000 * 2
    assert set(forward.labels) == set(backward.labels)
    assert 0 < len(forward.labels) <= 300
