"""Training runs: their states and what each records (commit, data, parameters, results)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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
