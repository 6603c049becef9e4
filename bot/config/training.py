"""Settings of /train: backends, job template, metrics location, accuracy gate and GPU quotas."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import Field, model_validator

from bot.config.base import Strict

K8S_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
PENDING_TIMEOUT = 30 * 60  # seconds a Kubernetes run may wait to start before it is failed


class GitLabTraining(Strict):
    """Where a pipeline's metrics artifact is: the job that writes it and the file's path."""

    metrics_job: str = "evaluate"
    metrics_path: str = "metrics.json"


class KubernetesTraining(Strict):
    """The Job template: everything but the GPU count, run id, dataset and parameters."""

    namespace: str = Field(default="ml-training", pattern=K8S_NAME)
    template: str | None = None
    image: str = Field(default="", max_length=512)
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    service_account: str | None = None
    backoff_limit: int = Field(default=0, ge=0, le=20)
    active_deadline_seconds: int | None = Field(default=86400, ge=1)
    pending_timeout_seconds: int | None = Field(default=PENDING_TIMEOUT, ge=1)
    ttl_seconds_after_finished: int | None = Field(default=7 * 86400, ge=0)
    metrics_bucket: str | None = None
    metrics_key: str = "runs/{run_id}/metrics.json"

    @model_validator(mode="after")
    def _pending_before_deadline(self) -> KubernetesTraining:
        pending, deadline = self.pending_timeout_seconds, self.active_deadline_seconds
        if pending is not None and deadline is not None and pending >= deadline:
            raise ValueError(
                f"pending_timeout_seconds ({pending}) must be shorter than "
                f"active_deadline_seconds ({deadline}): a run that never started would be "
                f"stopped by the deadline first; lower it (default {PENDING_TIMEOUT}) or unset it"
            )
        return self


def resync_seconds(models: Iterable[KubernetesTraining]) -> float:
    """How often the watch reports pending jobs again: often enough that a run is failed
    within a quarter of its pending timeout after it expires (between 1 and 30 seconds)."""
    timeouts = [m.pending_timeout_seconds for m in models if m.pending_timeout_seconds]
    return min([30.0, *(max(1.0, t / 4) for t in timeouts)])


class Gate(Strict):
    """The accuracy gate: minimum values, and the largest drop allowed against the champion."""

    min: dict[str, float] = Field(default_factory=dict)
    max_drop: dict[str, float] = Field(default_factory=dict)


class Baseline(Strict):
    """The champion's figures when no run is deployed to prod yet."""

    metrics: dict[str, float] = Field(default_factory=dict)
    test_set: str | None = None


class TrainingConfig(Strict):
    backend: Literal["gitlab", "kubernetes"] = "gitlab"
    default_ref: str = "main"
    default_gpus: int = Field(default=1, ge=0)
    max_gpus: int = Field(default=8, ge=0)
    max_concurrent_gpus: int | None = Field(default=None, ge=0)
    parameters: list[str] | None = None
    gitlab: GitLabTraining = Field(default_factory=GitLabTraining)
    kubernetes: KubernetesTraining = Field(default_factory=KubernetesTraining)
    gate: Gate = Field(default_factory=Gate)
    baseline: Baseline | None = None


class TrainingSettings(Strict):
    """Bot-wide training settings."""

    max_gpus_per_user: int | None = Field(default=None, ge=0)
    poll_seconds: float = Field(default=10.0, gt=0, le=3600)
    poll_max_seconds: float = Field(default=120.0, gt=0, le=3600)
    webhook_poll_seconds: float = Field(default=300.0, gt=0, le=86400)
