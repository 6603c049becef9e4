"""Monitoring in the store (SQLite and PostgreSQL): one unresolved incident per kind, even
when two checks breach at once; resolving happens once; references and checks are upserts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.domain.monitoring.incidents import CheckResult, Finding, IncidentState, Status
from bot.store import Store
from bot.store.monitoring import MonitoringStore

AT = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


async def test_two_checks_breaching_at_once_share_one_incident(store: Store) -> None:
    kept = MonitoringStore(store.db)
    results = await asyncio.gather(
        *(kept.breach("fraud", "prod", "drift", f"drift {n}", 7, AT) for n in range(4))
    )
    assert sorted(created for _, created in results) == [False, False, False, True]
    [incident] = await kept.active("fraud", "prod")
    assert incident.checks == 4 and incident.deploy_id == 7
    assert incident.state == IncidentState.OPEN


async def test_an_incident_resolves_once_and_the_next_breach_opens_a_new_one(
    store: Store,
) -> None:
    kept = MonitoringStore(store.db)
    first, _ = await kept.breach("fraud", "prod", "latency", "slow", 1, AT)
    acked = await kept.acknowledge(first.id, "U0ALICE", AT)
    assert acked is not None and acked.acknowledged_by == "U0ALICE"
    resolved = await kept.resolve(first.id, AT + timedelta(minutes=15))
    assert resolved is not None and resolved.state == IncidentState.RESOLVED
    assert await kept.resolve(first.id, AT + timedelta(minutes=30)) is None
    assert await kept.snooze(first.id, AT + timedelta(days=1), AT) is None
    second, created = await kept.breach("fraud", "prod", "latency", "slow again", 2, AT)
    assert created and second.id != first.id and second.first == "slow again"


async def test_references_and_last_checks_are_replaced(store: Store) -> None:
    kept = MonitoringStore(store.db)
    await kept.keep_reference(3, "s3://a/reference.json", None, "bad edges", AT)
    await kept.keep_reference(3, "s3://a/reference.json", {"rows": 1}, None, AT)
    reference = await kept.reference(3)
    assert reference is not None and reference.profile == {"rows": 1} and reference.error is None
    finding = Finding("5xx", "5xx rate", Status.OK, "0.1% of 500 requests")
    await kept.save_check("fraud", "prod", CheckResult(AT, 2, 3, [finding]))
    await kept.save_check("fraud", "prod", CheckResult(AT + timedelta(minutes=15), 2, 3, []))
    last = await kept.last_check("fraud", "prod")
    assert last is not None and last.checked_at == AT + timedelta(minutes=15)
    assert last.findings == [] and last.run_id == 3
