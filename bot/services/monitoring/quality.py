"""Drift of the latest window of predictions against the deployed run's reference, and
production accuracy (predictions joined with labels) against its test-set accuracy."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

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


def finite(value: float | None) -> float | None:
    """A number JSON (and PostgreSQL's JSONB) can hold: NaN and infinities become None."""
    return float(value) if value is not None and math.isfinite(value) else None


def critical_value(level: float, dof: int) -> float | None:
    """The chi-squared statistic at which ``dof`` degrees of freedom reach p = ``level``."""
    if dof < 1 or not 0.0 < level < 1.0:
        return None
    from scipy.special import chdtri  # type: ignore[import-untyped]

    return finite(float(chdtri(dof, level)))


def drift_values(report: DriftReport) -> dict[str, Any]:
    """Per tested profile: the chi-squared statistic, the critical value at its Holm level
    (the threshold it was held to), the verdict, PSI and the p-value."""
    features = {
        f.name: {
            "statistic": finite(f.statistic), "threshold": critical_value(f.level, f.dof),
            "drifted": f.drifted, "psi": finite(f.psi), "p_value": finite(f.p_value),
        }
        for f in report.features
        if f.tested
    }  # fmt: skip
    return {"rows": report.rows, "features": features}


def drift_finding(report: DriftReport) -> Finding:
    tested = [f for f in report.features if f.tested]
    if not tested:
        note = f"{report.rows} predictions in the window: too few to compare distributions"
        return Finding("drift", "drift", Status.UNKNOWN, note, {"rows": report.rows})
    values = drift_values(report)
    drifted = sorted(report.drifted, key=lambda f: f.p_value)
    if not drifted:
        text = f"none of {len(tested)} profiles drifted ({report.rows:,} predictions)"
        return Finding("drift", "drift", Status.OK, text, values)
    named = ", ".join(feature_text(f) for f in drifted[:SHOWN])
    more = f" and {len(drifted) - SHOWN} more" if len(drifted) > SHOWN else ""
    text = (
        f"{len(drifted)} of {len(tested)} drifted over {report.rows:,} predictions: {named}{more}"
    )
    return Finding("drift", "drift", Status.BREACHED, text, values)


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
    values = {
        "accuracy": finite(checked.accuracy), "low": finite(checked.interval.low),
        "high": finite(checked.interval.high), "labels": checked.labelled, "expected": expected,
    }  # fmt: skip
    if checked.labelled < t.min_labels:
        return Finding("accuracy", "accuracy", Status.UNKNOWN, checked.note, values)
    status = Status.BREACHED if checked.breached else Status.OK
    return Finding("accuracy", "accuracy", status, checked.note, values)
