"""The monitoring history and the digest's sent day in the store (SQLite and PostgreSQL):
every check kept with its figures, per environment, pruned to ``HISTORY``; the day upserted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.monitoring.incidents import CheckResult, Finding, Status
from bot.store import Store
from bot.store.monitoring import HISTORY, MonitoringStore

AT = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
DRIFT = {
    "rows": 2000,
    "features": {
        "amount": {"statistic": 61.5, "threshold": 21.7, "drifted": True, "psi": 0.24,
                   "p_value": 1e-64},
        "country": {"statistic": 3.1, "threshold": None, "drifted": False, "psi": 0.0,
                    "p_value": 0.5},
    },
}  # fmt: skip


def check(at: datetime, accuracy: float) -> CheckResult:
    figures = {"accuracy": accuracy, "low": accuracy - 0.02, "high": accuracy + 0.02,
               "labels": 400, "expected": 0.95}  # fmt: skip
    return CheckResult(at, 2, 3, [
        Finding("drift", "drift", Status.BREACHED, "1 of 2 drifted", DRIFT),
        Finding("accuracy", "accuracy", Status.OK, "fine", figures),
    ])  # fmt: skip


async def test_each_check_is_kept_with_its_figures_oldest_first(store: Store) -> None:
    kept = MonitoringStore(store.db)
    for n in range(3):
        await kept.save_check("fraud", "prod", check(AT + timedelta(minutes=15 * n), 0.9 + n / 100))
    await kept.save_check("fraud", "stg", check(AT, 0.5))
    found = await kept.checks_since("fraud", "prod", AT + timedelta(minutes=15))
    assert [c.checked_at for c in found] == [AT + timedelta(minutes=m) for m in (15, 30)]
    drift = found[0].finding("drift")
    assert drift is not None and drift.values == DRIFT and drift.status == Status.BREACHED
    accuracy = found[1].finding("accuracy")
    assert accuracy is not None and accuracy.values["accuracy"] == 0.92
    assert accuracy.values["labels"] == 400
    last = await kept.last_check("fraud", "prod")
    assert last is not None and last.findings == found[1].findings


async def test_checks_older_than_the_history_are_dropped(store: Store) -> None:
    kept = MonitoringStore(store.db)
    await kept.save_check("fraud", "prod", check(AT, 0.9))
    await kept.save_check("fraud", "stg", check(AT, 0.9))
    await kept.save_check("fraud", "prod", check(AT + HISTORY, 0.9))
    since = AT - timedelta(days=1)
    assert [c.checked_at for c in await kept.checks_since("fraud", "prod", since)] == [
        AT,
        AT + HISTORY,
    ]
    await kept.save_check("fraud", "prod", check(AT + HISTORY + timedelta(seconds=1), 0.9))
    found = await kept.checks_since("fraud", "prod", since)
    assert [c.checked_at for c in found] == [AT + HISTORY, AT + HISTORY + timedelta(seconds=1)]
    assert len(await kept.checks_since("fraud", "stg", since)) == 1  # another env's: kept


async def test_the_digest_day_is_recorded_per_environment(store: Store) -> None:
    kept = MonitoringStore(store.db)
    assert await kept.digest_day("fraud", "prod") is None
    await kept.digest_sent("fraud", "prod", "2025-06-01", AT, "F1")
    await kept.digest_sent("fraud", "prod", "2025-06-02", AT + timedelta(days=1), "F2")
    assert await kept.digest_day("fraud", "prod") == "2025-06-02"
    assert await kept.digest_day("fraud", "stg") is None
