"""What a monitoring check found, and the incidents it opens, updates and resolves. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    BREACHED = "breached"
    UNKNOWN = "unknown"  # no data, too few rows or labels, a read that failed


class IncidentState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


ACTIVE = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED)


@dataclass(frozen=True)
class Finding:
    """One thing a check looked at: ``kind`` names the incident a breach opens
    (``latency``, ``5xx``, ``slo:<name>``, ``drift``, ``accuracy``). ``values`` are its
    figures for history and the digest: an SLO's ``value`` and limit, drift's ``features``
    (name -> statistic, threshold, drifted, psi), accuracy's ``accuracy``, ``low``, ``high``
    and ``labels`` (JSON-safe numbers, kept with the check)."""

    kind: str
    title: str
    status: Status
    text: str
    values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def breached(self) -> bool:
        return self.status == Status.BREACHED


@dataclass(frozen=True)
class CheckResult:
    """One check of one model environment, kept as the last check's result."""

    checked_at: datetime
    deploy_id: int | None
    run_id: int | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def breaches(self) -> list[Finding]:
        return [f for f in self.findings if f.breached]

    def to_json(self) -> dict[str, Any]:
        return {"findings": [asdict(f) | {"values": dict(f.values)} for f in self.findings]}

    def finding(self, kind: str) -> Finding | None:
        return next((f for f in self.findings if f.kind == kind), None)

    @classmethod
    def from_json(
        cls, data: dict[str, Any], checked_at: datetime, deploy_id: int | None, run_id: int | None
    ) -> CheckResult:
        findings = [
            Finding(f["kind"], f["title"], Status(f["status"]), f["text"], f.get("values") or {})
            for f in data.get("findings", [])
        ]
        return cls(checked_at, deploy_id, run_id, findings)


@dataclass(frozen=True)
class Incident:
    id: int
    model: str
    env: str
    kind: str
    state: IncidentState
    opened_at: datetime
    updated_at: datetime
    first: str  # what breached when it opened
    latest: str  # what the last breaching check said
    checks: int  # breaching checks so far
    deploy_id: int | None = None  # live when it began
    resolved_at: datetime | None = None
    acknowledged_by: str | None = None
    snoozed_until: datetime | None = None

    @property
    def card_key(self) -> str:
        return f"incident:{self.id}"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def snoozed(self, now: datetime) -> bool:
        return self.snoozed_until is not None and now < self.snoozed_until


def open_key(model: str, env: str, kind: str) -> str:
    return f"{model}/{env}/{kind}"
