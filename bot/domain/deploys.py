"""Deployments, their approval votes, environment locks and the deploy freeze."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


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
        return self in (
            DeployState.SUCCEEDED,
            DeployState.FAILED,
            DeployState.REJECTED,
            DeployState.EXPIRED,
        )


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
    # where a running deploy is (bot.services.deploys.runner.Step), how many ecspresso deploys
    # it started, what ECS ran before (JSON), and its running ecspresso's process group
    step: str | None = None
    ecspresso_runs: int = 0
    ecs_before: str | None = None
    ecspresso_pgid: int | None = None
    ecspresso_fingerprint: str | None = None
    request: str | None = None  # the Slack delivery that asked for it: a replay finds it
    replied: bool = False  # that delivery's reply was sent (a replay does not send another)
    attempt: int = 0  # how often a bot took it to run; writes while running carry this one
    approvers: tuple[str, ...] = ()
    rejecters: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApprovalVote:
    deploy_id: int
    user: str
    approve: bool
    via: str  # "button" or "reaction"
    at: datetime
