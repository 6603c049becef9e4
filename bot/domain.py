"""Plain data shared by services, store and views. No I/O here."""

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
class Lock:
    """A held environment lock: no deploy reaches ``model``/``env`` while it exists."""

    model: str
    env: str
    holder: str
    reason: str
    since: datetime
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Freeze:
    """The global deploy freeze: while set, no deploy starts anywhere."""

    holder: str
    reason: str
    since: datetime


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


@dataclass(frozen=True)
class CardRef:
    """Where a card lives in Slack: edits go to this channel and timestamp."""

    key: str
    channel: str
    ts: str


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED)


@dataclass(frozen=True)
class Run:
    """One training run: what produced a model (code, data, parameters) and how it went."""

    id: int
    model: str
    backend: str  # "gitlab" or "kubernetes"
    state: RunState
    requester: str
    ref: str
    created_at: datetime
    sha: str | None = None
    dataset: str | None = None
    gpus: int = 0
    params: dict[str, str] = field(default_factory=dict)
    pipeline_id: int | None = None
    job_name: str | None = None
    namespace: str | None = None
    web_url: str | None = None
    stage: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    detail: str = ""
    project: str | None = None
    metrics: dict[str, float] | None = None
    test_set: str | None = None
    verdict: dict[str, Any] | None = None
    image: str | None = None


class DeployState(StrEnum):
    AWAITING_APPROVAL = "awaiting approval"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def finished(self) -> bool:
        return self in (DeployState.SUCCEEDED, DeployState.FAILED, DeployState.REJECTED,
                        DeployState.EXPIRED)


@dataclass(frozen=True)
class Deployment:
    """One deploy (or rollback) of an image to a model's environment."""

    id: int
    model: str
    env: str
    kind: str  # "deploy" or "rollback"
    state: DeployState
    requester: str
    created_at: datetime
    image_tag: str
    digest: str
    run_id: int | None = None
    sha: str | None = None
    ref: str | None = None
    force_reason: str | None = None
    revision: int | None = None
    previous_revision: int | None = None
    target_deploy: int | None = None
    expires_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    detail: str = ""
    diff: str | None = None
    approvers: tuple[str, ...] = ()
    rejecters: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApprovalVote:
    deploy_id: int
    user: str
    approve: bool
    via: str  # "button" or "reaction"
    at: datetime
