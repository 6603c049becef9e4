"""Drift of the latest window of predictions against the deployed run's reference, and
production accuracy (predictions joined with labels) against its test-set accuracy."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.config.monitoring import EnvMonitoring, MonitoringConfig
from bot.domain.monitoring.accuracy import check_accuracy
from bot.domain.monitoring.drift import DriftReport, FeatureDrift, drift
from bot.domain.monitoring.incidents import Finding, Status
from bot.domain.monitoring.records import S3Prefix, Window
from bot.domain.monitoring.reference import Reference
from bot.services.monitoring.ports import PredictionScans

SHOWN = 3  # drifted features named on a card


def feature_text(f: FeatureDrift) -> str:
    moved = f"; {f.biggest}" if f.biggest else ""
    return f"{f.name} (p={f.p_value:.2g} <= {f.level:.2g}, PSI {f.psi:.2f}{moved})"


def drift_finding(report: DriftReport) -> Finding:
    tested = [f for f in report.features if f.tested]
    if not tested:
        note = f"{report.rows} predictions in the window: too few to compare distributions"
        return Finding("drift", "drift", Status.UNKNOWN, note)
    drifted = sorted(report.drifted, key=lambda f: f.p_value)
    if not drifted:
        text = f"none of {len(tested)} profiles drifted ({report.rows:,} predictions)"
        return Finding("drift", "drift", Status.OK, text)
    named = ", ".join(feature_text(f) for f in drifted[:SHOWN])
    more = f" and {len(drifted) - SHOWN} more" if len(drifted) > SHOWN else ""
    text = (
        f"{len(drifted)} of {len(tested)} drifted over {report.rows:,} predictions: {named}{more}"
    )
    return Finding("drift", "drift", Status.BREACHED, text)


async def check_drift(
    scans: PredictionScans, reference: Reference, env: EnvMonitoring, config: MonitoringConfig,
    now: datetime,
) -> Finding:  # fmt: skip
    assert env.predictions is not None
    window = Window(now - timedelta(minutes=config.window), now)
    scan = await scans.scan(reference, S3Prefix.parse(env.predictions), window)
    return drift_finding(drift(scan.counts, config.thresholds.false_alarm_rate))


async def check_production_accuracy(
    scans: PredictionScans, reference: Reference, env: EnvMonitoring, config: MonitoringConfig,
    expected: float | None, now: datetime,
) -> Finding:  # fmt: skip
    """Labels that arrived over the last ``labels_hours`` joined with the predictions of
    those hours (labels come late: the drift window alone would hold few)."""
    if expected is None:
        note = "the deployed run's metrics have no `accuracy` to compare with"
        return Finding("accuracy", "accuracy", Status.UNKNOWN, note)
    assert env.predictions is not None and env.labels is not None
    period = Window(now - timedelta(hours=config.labels_hours), now)
    scan = await scans.scan(
        reference, S3Prefix.parse(env.predictions), period, S3Prefix.parse(env.labels), period
    )
    t = config.thresholds
    checked = check_accuracy(
        scan.joined.correct, scan.joined.labelled, expected,
        confidence=t.accuracy_confidence, tolerance=t.accuracy_tolerance, min_labels=t.min_labels,
    )  # fmt: skip
    if checked.labelled < t.min_labels:
        return Finding("accuracy", "accuracy", Status.UNKNOWN, checked.note)
    status = Status.BREACHED if checked.breached else Status.OK
    return Finding("accuracy", "accuracy", status, checked.note)
