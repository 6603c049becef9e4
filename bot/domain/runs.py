"""Training runs: their states and what each records (commit, data, parameters, results)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


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
    request: str | None = None  # the Slack delivery that asked for it (a replay finds it)


GAVE_UP_PENDING = "did not start within"
"""How the detail of a run failed for waiting too long to start begins."""


def waiting_to_start(run: Run, now: datetime) -> timedelta | None:
    """How long an active run has waited to start (since it was asked for); None once it has
    started or finished."""
    if run.state != RunState.QUEUED or run.started_at is not None:
        return None
    return now - run.created_at


def gave_up_pending(limit_seconds: int, reason: str) -> str:
    """The detail of a run failed because it waited longer than ``limit_seconds`` to start."""
    return f"{GAVE_UP_PENDING} {span(limit_seconds)}: {reason or 'Kubernetes gave no reason'}"


def span(seconds: int) -> str:
    """A whole duration in its largest units: 45s, 30m, 1h 30m, 2h."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return " ".join(part for part in parts if part) or "0s"
