"""Plain data of A/B experiments: the experiment, its history of changes, guard readings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class AbState(StrEnum):
    DEPLOYING = "deploying B"
    RUNNING = "running"
    PROMOTING = "promoting"
    PROMOTED = "promoted"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        return self in ACTIVE


ACTIVE = (AbState.DEPLOYING, AbState.RUNNING, AbState.PROMOTING)


class ChangeState(StrEnum):
    DONE = "done"
    AWAITING_APPROVAL = "awaiting approval"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REPLACED = "replaced"
    FAILED = "failed"


@dataclass(frozen=True)
class GuardReading:
    """One comparison of B with A: the values, what was compared, and whether it breached."""

    name: str
    kind: str  # "5xx" (rates), "latency" (seconds, B/A), or a custom metric's compare
    a: float | None
    b: float | None
    value: float | None  # what is checked against low/high
    low: float | None = None
    high: float | None = None
    breached: bool = False
    note: str = ""


@dataclass(frozen=True)
class Experiment:
    """One A/B experiment on ``model``/``env``: B is the service of ``b_env``."""

    id: int
    model: str
    env: str
    b_env: str
    state: AbState
    requester: str
    created_at: datetime
    weight: int = 0  # the share of B asked for once B is deployed
    run_b: int | None = None
    image_b: str = ""
    digest_b: str = ""
    run_a: int | None = None
    image_a: str = ""
    deploy_id: int | None = None  # B's deploy, later the promote deploy to A
    weight_a: int | None = None  # as ELBv2 last reported
    weight_b: int | None = None
    breaches: int = 0
    failures: int = 0
    readings: list[GuardReading] = field(default_factory=list)
    checked_at: datetime | None = None
    guard_error: str | None = None
    finished_at: datetime | None = None
    detail: str = ""

    @property
    def b_share(self) -> int:
        """B's share in percent, from the weights ELBv2 last reported (0 when unknown)."""
        return share(self.weight_a or 0, self.weight_b or 0)


def share(a: int, b: int) -> int:
    return round(100 * b / (a + b)) if a + b > 0 else 0


@dataclass(frozen=True)
class AbChange:
    """One line of an experiment's history; a weight change may wait for approval."""

    id: int
    experiment_id: int
    at: datetime
    actor: str
    action: str  # start, deploy, set, promote, abort, guard
    state: ChangeState = ChangeState.DONE
    weight_from: int | None = None
    weight_to: int | None = None
    expires_at: datetime | None = None
    detail: str = ""
    approvers: tuple[str, ...] = ()
    rejecters: tuple[str, ...] = ()
