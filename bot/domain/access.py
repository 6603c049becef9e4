"""Who may act, and what each action came to: roles and the audit log."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    VIEWER = "viewer"
    TRAINER = "trainer"
    DEPLOYER = "deployer"
    APPROVER = "approver"
    ADMIN = "admin"


class Outcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    REJECTED = "rejected"
    ERROR = "error"


@dataclass(frozen=True)
class AuditEvent:
    """One line of the audit log: who did what to which target, and how it ended."""

    actor: str
    action: str
    target: str
    outcome: Outcome
    correlation_id: str
    at: datetime
    model: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    id: int | None = None
