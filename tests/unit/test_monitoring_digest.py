"""The digest's data from the check history, and its summary: pure functions, by value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.deploys import Deployment, DeployState
from bot.domain.monitoring.chart import AccuracyPoint, DeployMark, DriftBar
from bot.domain.monitoring.incidents import CheckResult, Finding, Status
from bot.services.monitoring.digest import digest_data
from bot.views.monitoring import digest_summary

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def drift(at: datetime, **features: tuple[float, float | None, bool]) -> CheckResult:
    values = {
        name: {"statistic": s, "threshold": t, "drifted": d} for name, (s, t, d) in features.items()
    }
    return CheckResult(at, 2, 1, [Finding("drift", "drift", Status.OK, "", {"features": values})])


def accuracy(at: datetime, value: float | None, labels: int) -> CheckResult:
    figures = {"accuracy": value, "low": None if value is None else value - 0.01,
               "high": None if value is None else value + 0.01, "labels": labels,
               "expected": 0.95}  # fmt: skip
    return CheckResult(at, 2, 1, [Finding("accuracy", "accuracy", Status.OK, "", figures)])


def deploy(n: int, finished: datetime | None, state: DeployState) -> Deployment:
    return Deployment(n, "fraud", "prod", "deploy", state, "U0ALICE", AT, f"v{n}", "sha256:x",
                      finished_at=finished)  # fmt: skip


def test_the_digest_takes_each_features_latest_figures_accuracy_over_time_and_deploys() -> None:
    since = AT - timedelta(hours=24)
    checks = [
        drift(AT - timedelta(hours=2), amount=(50.0, 20.0, True), age=(3.0, 15.0, False)),
        accuracy(AT - timedelta(hours=2), 0.93, 400),
        drift(AT - timedelta(hours=1), amount=(4.0, 20.0, False), country=(1.0, None, False)),
        accuracy(AT - timedelta(hours=1), None, 12),  # too few labels: no point
        accuracy(AT, 0.91, 800),
    ]
    deploys = [
        deploy(3, AT - timedelta(hours=3), DeployState.SUCCEEDED),
        deploy(2, AT - timedelta(hours=5), DeployState.FAILED),
        deploy(1, AT - timedelta(hours=30), DeployState.SUCCEEDED),
    ]
    data = digest_data("fraud", "prod", checks, deploys, since)

    assert data.drift == [DriftBar("amount", 4.0, 20.0, False), DriftBar("age", 3.0, 15.0, False)]
    assert data.accuracy == [
        AccuracyPoint(AT - timedelta(hours=2), 0.93, 0.93 - 0.01, 0.93 + 0.01, 400),
        AccuracyPoint(AT, 0.91, 0.91 - 0.01, 0.91 + 0.01, 800),
    ]
    assert data.deploys == [DeployMark(AT - timedelta(hours=3), 3)]
    assert data.test_accuracy == 0.95
    assert digest_summary(data, len(checks), 1).splitlines() == [
        "*Daily digest of fraud/prod* (last 24 h, 5 checks)",
        "Drift: none of 2 profiles drifted",
        "Production accuracy: 0.910 (0.900-0.920) on 800 labels vs 0.950 on the test set",
        "Deploys: #3",
        "Open incidents: 1",
    ]


def test_an_empty_period_says_so() -> None:
    data = digest_data("fraud", "prod", [], [], AT)
    assert digest_summary(data, 0, 0).splitlines()[1:4] == [
        "Drift: no check compared distributions",
        "Production accuracy: no labels in this period",
        "Deploys: none",
    ]
