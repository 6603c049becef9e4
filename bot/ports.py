"""The seams services need; integrations implement them, only bot/app.py wires them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

Blocks = list[dict[str, Any]]


class Chat(Protocol):
    """Posting and editing messages; implemented by bot.notifier.Notifier."""

    async def post(
        self, channel: str, text: str, blocks: Blocks | None = None, *, thread_ts: str | None = None
    ) -> tuple[str, str]: ...

    def edit(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> None: ...

    async def show_card(
        self,
        key: str,
        channel: str,
        text: str,
        blocks: Blocks | None = None,
        *,
        parent: str | None = None,
        fresh: bool = False,
    ) -> None:
        """Record what card ``key`` should show; Slack is made to match it later (outbox)."""
        ...

    def revise_card(self, key: str, text: str, blocks: Blocks | None = None) -> None: ...

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
    updated_at: datetime | None = None
    """GitLab's ``updated_at`` (its own clock), when the answer carried it."""


class Pipelines(Protocol):
    """GitLab CI, implemented by integrations.gitlab.GitLabPipelines (python-gitlab)."""

    async def create(
        self, project: str, ref: str, variables: Mapping[str, str]
    ) -> PipelineStatus: ...

    async def find(
        self, project: str, ref: str, variables: Mapping[str, str], since: datetime
    ) -> PipelineStatus | None:
        """The pipeline for ``ref`` (updated after ``since``) that carries all of ``variables``,
        with its jobs: how a run whose pipeline may or may not exist finds it before creating
        one (it may have finished meanwhile)."""
        ...

    async def status(self, project: str, pipeline_id: int) -> PipelineStatus: ...

    async def updated(
        self, project: str, after: datetime | None, limit: int
    ) -> list[PipelineStatus]:
        """Up to ``limit`` pipelines of ``project`` updated after ``after`` (all when None),
        oldest update first, without their jobs; each has ``updated_at``."""
        ...

    async def jobs(self, project: str, pipeline_id: int) -> tuple[PipelineJob, ...]:
        """The pipeline's jobs (retried ones left out), in stage order."""
        ...

    async def cancel(self, project: str, pipeline_id: int) -> None: ...

    async def job_log_tail(self, project: str, job_id: int, lines: int = 30) -> str: ...

    async def job_artifact(self, project: str, job_id: int, path: str) -> bytes | None: ...


@dataclass(frozen=True)
class BranchHead:
    """A branch as GitLab reports it: its newest commit and whether it is protected."""

    name: str
    sha: str
    protected: bool
    default: bool = False


class RepoFiles(Protocol):
    """Files of a GitLab repository (deploy configs live on a protected branch there)."""

    async def read_file(self, project: str, path: str, ref: str) -> bytes | None: ...

    async def branch(self, project: str, name: str | None = None) -> BranchHead:
        """The branch ``name`` (None: the project's default branch); NotFound when missing."""
        ...

    async def commit_of(self, project: str, ref: str) -> str | None:
        """The commit a branch, tag or sha names now (None: no such ref)."""
        ...


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
    template: str | None = None  # the team's Job manifest (a YAML file) to fill in


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

    async def find_job(self, namespace: str, label_selector: str) -> str | None:
        """The name of a Job matching ``label_selector`` (a run's label), if one exists."""
        ...

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


# ---- deploys ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningContainer:
    """One container of a RUNNING task of the PRIMARY deployment, as DescribeTasks reports it."""

    task: str  # the task's ARN
    name: str
    image: str  # the reference the task was started with
    digest: str  # ``imageDigest`` (else the digest ``image`` pins); "" when ECS does not say


@dataclass(frozen=True)
class ServiceState:
    """What ECS says a service runs: the truth a deploy is verified against."""

    cluster: str
    service: str
    task_definition: str  # ARN of the primary deployment's task definition
    revision: int
    images: tuple[str, ...]  # the task definition's container images
    rollout_state: str  # COMPLETED, IN_PROGRESS or FAILED (primary deployment)
    running: int
    desired: int
    deployments: int  # how many deployments the service lists (more than 1: in progress)
    deployment_ids: tuple[str, ...] = ()
    tasks: int = 0  # RUNNING tasks of the primary deployment (on its task definition)
    containers: tuple[RunningContainer, ...] = ()  # the containers of those tasks

    def changed_since(self, before: ServiceState) -> bool:
        """Whether ECS moved: another task definition, desired count or set of deployments."""
        return (self.task_definition, self.desired, self.deployment_ids) != (
            before.task_definition,
            before.desired,
            before.deployment_ids,
        )


@dataclass(frozen=True)
class Registration:
    """A registered task definition revision: its number and its container images."""

    revision: int
    images: tuple[str, ...]


class Registry(Protocol):
    """ECR, implemented by integrations.aws.ecs.EcrRegistry."""

    async def digest(self, repository: str, tag: str) -> str:
        """The immutable ``sha256:...`` digest a tag points at; NotFound when it does not exist."""
        ...

    async def image_tags(self, repository: str, digest: str) -> tuple[str, ...]:
        """The tags of the image with ``digest`` in ``repository`` (maybe none); NotFound when
        the repository holds no image with that digest."""
        ...


class Services(Protocol):
    """ECS, implemented by integrations.aws.ecs.EcsServices."""

    async def state(self, cluster: str, service: str) -> ServiceState:
        """The service, its primary deployment and what that deployment's tasks run."""
        ...

    async def image_digests(self, images: tuple[str, ...]) -> tuple[str, ...]:
        """The digest each image reference runs (pinned ``@sha256:`` or a tag resolved in ECR)."""
        ...

    async def newest_registration(self, task_definition: str) -> Registration:
        """The newest ACTIVE revision of the family ``task_definition`` (an ARN) belongs to."""
        ...


@dataclass(frozen=True)
class EcspressoResult:
    exit_code: int | None  # None when it was killed after the timeout
    output: str  # the last lines of stdout and stderr together
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def config_error(self) -> bool:
        """Exit 2 is Go's panic: an unset ``must_env`` while rendering, before any AWS call."""
        return self.exit_code == 2 and not self.timed_out


@dataclass(frozen=True)
class ProcessGroup:
    """A running ecspresso's process group, as recorded in the store while it runs:
    ``fingerprint`` (boot id and the leader's start time) tells it from a recycled pid."""

    pgid: int
    fingerprint: str


class Deployer(Protocol):
    """The ecspresso CLI, implemented by integrations.ecspresso.Ecspresso."""

    async def deploy(
        self,
        config: str,
        env: Mapping[str, str],
        on_line: Callable[[str], None],
        *,
        revision: int | None = None,
        keep_service: bool = False,
        on_start: Callable[[ProcessGroup], Awaitable[None]] | None = None,
    ) -> EcspressoResult:
        """``revision``: deploy that registered revision (``--revision N``) instead of
        registering the local task definition; ``keep_service``: ``--no-update-service``, so
        only the task definition changes (rollbacks: never apply a new service definition).
        ``on_start`` is awaited with the process group once it runs (a failure there ends it);
        the group has ended when this returns or raises (cancelled too)."""
        ...

    async def end_group(self, group: ProcessGroup) -> bool:
        """End a recorded group if it still runs (it, not a recycled pid): SIGTERM, SIGKILL
        after a grace. True when nothing of it runs any more."""
        ...

    async def render_config(self, config: str, env: Mapping[str, str]) -> str:
        """``ecspresso render config``: the config as ecspresso reads it (YAML/JSON text)."""
        ...

    async def rollback(
        self, config: str, env: Mapping[str, str], on_line: Callable[[str], None]
    ) -> EcspressoResult: ...

    async def diff(self, config: str, env: Mapping[str, str]) -> str: ...

    async def revisions(self, config: str, env: Mapping[str, str]) -> list[dict[str, Any]]: ...

    async def version(self) -> str: ...


# ---- A/B traffic --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrafficRoute:
    """Where an A/B split lives: the forward action of a listener (default action) or of one
    listener rule, between target groups A and B (ARNs)."""

    group_a: str
    group_b: str
    listener_arn: str | None = None
    rule_arn: str | None = None


@dataclass(frozen=True)
class Split:
    """The two target groups' weights as ELBv2 reports them."""

    a: int
    b: int


class Traffic(Protocol):
    """ALB weighted target groups, implemented by integrations.aws.alb.AlbTraffic."""

    async def split(self, route: TrafficRoute) -> Split: ...

    async def set_split(self, route: TrafficRoute, a: int, b: int) -> Split:
        """Write the weights, then return what ELBv2 reports afterwards."""
        ...


@dataclass(frozen=True)
class MetricQuery:
    """One CloudWatch statistic over a window; ``key`` names it in the answer."""

    key: str
    namespace: str
    name: str
    stat: str
    dimensions: tuple[tuple[str, str], ...]


class CloudMetrics(Protocol):
    """CloudWatch, implemented by integrations.aws.alb.CloudWatchMetrics."""

    async def read(
        self, queries: tuple[MetricQuery, ...], *, seconds: float
    ) -> dict[str, float | None]:
        """Each query's value over the last ``seconds`` (None: no data points)."""
        ...
