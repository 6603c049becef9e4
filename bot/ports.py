"""The seams services need; integrations implement them, only bot/app.py wires them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Blocks = list[dict[str, Any]]


class Chat(Protocol):
    """Posting and editing messages; implemented by bot.notifier.Notifier."""

    async def post(
        self, channel: str, text: str, blocks: Blocks | None = None, *, thread_ts: str | None = None
    ) -> tuple[str, str]: ...

    def edit(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> None: ...

    async def ephemeral(
        self, channel: str, user: str, text: str, blocks: Blocks | None = None
    ) -> None: ...

    async def respond(
        self,
        response_url: str,
        text: str,
        blocks: Blocks | None = None,
        *,
        replace_original: bool = False,
    ) -> None: ...


class Directory(Protocol):
    """Who is in which Slack user group; implemented by integrations.slack.SlackDirectory."""

    async def group_members(self, group_id: str) -> frozenset[str]: ...


# ---- training backends ----------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineJob:
    """One CI job of a pipeline, with GitLab's status words (created, pending, running,
    success, failed, canceled, skipped, manual)."""

    id: int
    name: str
    stage: str
    status: str
    web_url: str | None = None


@dataclass(frozen=True)
class PipelineStatus:
    """A GitLab pipeline as the bot needs it; ``status`` uses GitLab's words."""

    id: int
    status: str
    ref: str
    sha: str
    web_url: str
    jobs: tuple[PipelineJob, ...] = ()


class Pipelines(Protocol):
    """GitLab CI, implemented by integrations.gitlab.GitLabPipelines (python-gitlab)."""

    async def create(
        self, project: str, ref: str, variables: Mapping[str, str]
    ) -> PipelineStatus: ...

    async def status(self, project: str, pipeline_id: int) -> PipelineStatus: ...

    async def cancel(self, project: str, pipeline_id: int) -> None: ...

    async def job_log_tail(self, project: str, job_id: int, lines: int = 30) -> str: ...

    async def job_artifact(self, project: str, job_id: int, path: str) -> bytes | None: ...


@dataclass(frozen=True)
class JobSpec:
    """A batch/v1 Job the bot asks Kubernetes for (rendered from the model's template)."""

    name: str
    namespace: str
    image: str
    labels: Mapping[str, str]
    env: Mapping[str, str]
    gpus: int
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    service_account: str | None = None
    backoff_limit: int = 0
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None


@dataclass(frozen=True)
class JobUpdate:
    """What a Job (and its newest Pod) says now; ``phase`` is pending, running, succeeded or
    failed; ``reason`` explains pending or failed (for example the scheduler's message)."""

    namespace: str
    name: str
    phase: str
    labels: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    pod: str | None = None
    deleted: bool = False


@dataclass(frozen=True)
class NodeGpus:
    node: str
    allocatable: int
    requested: int


@dataclass(frozen=True)
class PendingGpuJob:
    namespace: str
    name: str
    gpus: int
    reason: str


class Cluster(Protocol):
    """Kubernetes, implemented by integrations.kubernetes.KubernetesCluster."""

    async def create_job(self, spec: JobSpec) -> None: ...

    async def delete_job(self, namespace: str, name: str) -> None: ...

    async def job_update(self, namespace: str, name: str) -> JobUpdate | None: ...

    def watch_jobs(self, namespace: str, label_selector: str) -> AsyncIterator[JobUpdate]: ...

    async def pod_log_tail(self, namespace: str, job_name: str, lines: int = 30) -> str: ...

    async def gpu_nodes(self) -> list[NodeGpus]: ...

    async def pending_gpu_jobs(
        self, namespace: str, label_selector: str
    ) -> list[PendingGpuJob]: ...


class ObjectStore(Protocol):
    """S3 (or compatible), implemented by integrations.aws.S3Objects."""

    async def read(self, bucket: str, key: str) -> bytes | None: ...


class TrainingEvents(Protocol):
    """Lets CI results hand a pipeline that a /train run started to the training service."""

    async def pipeline_changed(self, project: str, pipeline: PipelineStatus) -> bool:
        """True when the pipeline belongs to a run (whose card then shows it)."""
        ...
