"""The GitLab stand-in's projects, pipelines and jobs, and how a pipeline moves stage by stage."""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ACTIVE = frozenset({"created", "pending", "running"})
FINAL = frozenset({"success", "failed", "canceled", "skipped"})
RETRYABLE = frozenset({"failed", "canceled", "skipped"})
GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
ROLE_LEVELS = {"developer": DEVELOPER, "maintainer": MAINTAINER, "owner": OWNER}
"""``ci_pipeline_variables_minimum_override_role`` -> access level; ``no_one_allowed`` has none."""
VARIABLE_ROLES = ("no_one_allowed", *ROLE_LEVELS)


class ApiError(Exception):
    """An API error, answered with ``status`` and GitLab's body ``{key: message}``."""

    def __init__(self, status: int, message: Any, *, key: str = "message") -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.body = {key: message}


def not_found(what: str = "") -> ApiError:
    """GitLab's 404: ``404 Project Not Found``, or ``404 Not Found`` when it names nothing."""
    return ApiError(404, f"404 {what} Not Found" if what else "404 Not Found")


def fake_sha(seed: str) -> str:
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobPlan:
    """One job of the CI plan every new pipeline of a project gets (its .gitlab-ci.yml)."""

    name: str
    stage: str
    duration_s: float = 1.0
    trace: str = ""
    artifacts: Mapping[str, bytes] = field(default_factory=dict)


DEFAULT_PLAN = (
    JobPlan("prepare", "prepare"),
    JobPlan("train", "train"),
    JobPlan("evaluate", "evaluate"),
)


@dataclass
class StandInProject:
    """A private project; ``id`` 0 lets the stand-in number it. ``files`` are served at every
    commit, except where ``commit_files[sha]`` holds that commit's own version of a path.
    ``protected`` lists protected-branch names (wildcards as GitLab allows them); None means
    GitLab's default for a new project: the default branch is protected.
    ``restrict_user_defined_variables`` and ``ci_pipeline_variables_minimum_override_role``
    are GitLab's project settings for pipeline variables (self-managed defaults; GitLab.com's
    new namespaces have ``True`` and ``no_one_allowed``)."""

    path: str
    id: int = 0
    default_branch: str = "main"
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    trigger_tokens: list[str] = field(default_factory=list)
    jobs: list[JobPlan] = field(default_factory=lambda: list(DEFAULT_PLAN))
    files: dict[str, bytes] = field(default_factory=dict)
    commit_files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    protected: list[str] | None = None
    restrict_user_defined_variables: bool = False
    ci_pipeline_variables_minimum_override_role: str = "developer"

    def __post_init__(self) -> None:
        self.branches.setdefault(
            self.default_branch, fake_sha(f"{self.path}@{self.default_branch}")
        )
        if self.protected is None:
            self.protected = [self.default_branch]

    def protection(self, branch: str) -> str | None:
        """The protected-branch rule that covers ``branch`` (exact name or wildcard), if any."""
        rules = self.protected or []
        if branch in rules:
            return branch
        return next((r for r in rules if "*" in r and fnmatch.fnmatchcase(branch, r)), None)

    def variables_allowed(self, access_level: int) -> bool:
        """ProjectCiCdSetting#override_pipeline_variables_allowed?: may a member with this
        access level set pipeline variables?"""
        if not self.restrict_user_defined_variables:
            return True
        needed = ROLE_LEVELS.get(self.ci_pipeline_variables_minimum_override_role)
        return needed is not None and access_level >= needed

    def file(self, sha: str, path: str) -> bytes | None:
        """``path`` as it is at commit ``sha``."""
        own = self.commit_files.get(sha, {})
        return own[path] if path in own else self.files.get(path)

    def resolve(self, ref: str | None) -> str | None:
        """The commit a branch, tag or known sha names; None when GitLab would not find it."""
        ref = ref or self.default_branch
        sha = self.branches.get(ref) or self.tags.get(ref)
        if sha is not None:
            return sha
        known = {*self.branches.values(), *self.tags.values()}
        return next((s for s in known if len(ref) >= 7 and s.startswith(ref)), None)


@dataclass
class Job:
    id: int
    plan: JobPlan
    index: int
    status: str = "created"
    trace: str | bytes | None = None
    artifacts: dict[str, bytes] = field(default_factory=dict)
    fails: bool = False
    retried: bool = False
    created_at: datetime = field(default_factory=now)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def stage(self) -> str:
        return self.plan.stage

    def log(self) -> str | bytes:
        """The explicit trace (bytes as set), else what a runner would have printed so far."""
        if self.trace is not None:
            return self.trace
        if self.plan.trace or self.status in ("created", "pending", "skipped"):
            return self.plan.trace
        ending = {"success": "Job succeeded", "failed": "ERROR: Job failed: exit code 1"}
        lines = ["Running with gitlab-runner (stand-in)", f"$ {self.name}"]
        lines += [ending[self.status]] if self.status in ending else []
        return "\n".join(lines) + "\n"


@dataclass
class Pipeline:
    id: int
    iid: int
    project: StandInProject
    ref: str
    sha: str
    source: str
    variables: dict[str, str]
    inputs: dict[str, Any]
    jobs: list[Job]
    status: str = "created"
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def current(self) -> list[Job]:
        """The jobs GitLab lists by default (retried ones hidden), in stage order."""
        return sorted((j for j in self.jobs if not j.retried), key=lambda j: j.index)

    def job(self, name: str) -> Job:
        for job in self.current():
            if job.name == name:
                return job
        raise KeyError(f"pipeline {self.id} has no job {name!r}")


def composite(statuses: Iterable[str]) -> str:
    """A pipeline's status from its jobs', in the order GitLab's composite status decides it."""
    s = set(statuses)
    if s <= {"skipped"}:
        return "skipped" if s else "created"
    checks = (
        ({"success", "skipped"}, "success"),
        ({"created", "skipped"}, "created"),
        ({"canceled", "success", "skipped"}, "canceled"),
        ({"pending", "created", "skipped"}, "pending"),
    )
    for allowed, status in checks:
        if s <= allowed:
            return status
    if s & {"running", "pending", "created"}:
        return "running"
    return "failed"


class CiState:
    """Every project and pipeline; ids are instance-wide like GitLab's, iids per project."""

    def __init__(self, projects: Iterable[StandInProject]) -> None:
        self._ids = itertools.count(1)
        self._pipeline_ids = itertools.count(1001)
        self._job_ids = itertools.count(5001)
        self._iids: dict[int, itertools.count[int]] = {}
        self.projects: list[StandInProject] = []
        self.pipelines: list[Pipeline] = []
        for project in projects:
            self.add_project(project)

    def add_project(self, project: StandInProject) -> StandInProject:
        if project.id == 0:
            taken = {p.id for p in self.projects}
            project.id = next(i for i in self._ids if i not in taken)
        self.projects.append(project)
        self._iids[project.id] = itertools.count(1)
        return project

    def project(self, ident: str | int) -> StandInProject:
        """By numeric id or full path (case-insensitive), as GitLab looks ``:id`` up."""
        for project in self.projects:
            if str(project.id) == str(ident) or project.path.lower() == str(ident).lower():
                return project
        raise not_found("Project")

    def pipeline(self, project: StandInProject, pipeline_id: int) -> Pipeline:
        for pipeline in self.pipelines:
            if pipeline.id == pipeline_id and pipeline.project is project:
                return pipeline
        raise not_found()

    def job(self, project: StandInProject, job_id: int) -> tuple[Pipeline, Job]:
        for pipeline in self.pipelines:
            for job in pipeline.jobs:
                if job.id == job_id and pipeline.project is project:
                    return pipeline, job
        raise not_found("Job")

    def create(
        self,
        project: StandInProject,
        ref: str,
        *,
        source: str,
        variables: Mapping[str, str],
        inputs: Mapping[str, Any],
    ) -> Pipeline:
        sha = project.resolve(ref)
        if sha is None:
            raise ApiError(400, {"base": ["Reference not found"]})
        if not project.jobs:
            raise ApiError(400, {"base": ["Missing CI config file"]})
        jobs = [self._new_job(plan, i) for i, plan in enumerate(project.jobs)]
        pipeline = Pipeline(
            id=next(self._pipeline_ids),
            iid=next(self._iids[project.id]),
            project=project,
            ref=ref,
            sha=sha,
            source=source,
            variables=dict(variables),
            inputs=dict(inputs),
            jobs=jobs,
        )
        self.pipelines.append(pipeline)
        return pipeline

    def retry(self, pipeline: Pipeline) -> None:
        """Replace failed, canceled and skipped jobs by fresh ones, as GitLab's retry does."""
        for job in pipeline.current():
            if job.status in RETRYABLE:
                job.retried = True
                pipeline.jobs.append(self._new_job(job.plan, job.index))
        pipeline.finished_at = None
        settle(pipeline)

    def _new_job(self, plan: JobPlan, index: int) -> Job:
        return Job(next(self._job_ids), plan, index, artifacts=dict(plan.artifacts))


# ---- how a pipeline moves -----------------------------------------------------------------


def step(pipeline: Pipeline) -> None:
    """One move a runner makes: finish the running job, else start the next pending one."""
    if pipeline.status in FINAL:
        return
    jobs = pipeline.current()
    running = next((j for j in jobs if j.status == "running"), None)
    pending = next((j for j in jobs if j.status == "pending"), None)
    if running is not None:
        _finish(running, "failed" if running.fails else "success")
    elif pending is not None:
        pending.status, pending.started_at = "running", now()
    settle(pipeline)


def force(pipeline: Pipeline, to: str) -> None:
    """Straight to ``success``, ``failed`` (the next unfinished job fails) or ``canceled``."""
    if to == "canceled":
        cancel(pipeline)
        return
    if pipeline.status in FINAL:
        return
    active = [j for j in pipeline.current() if j.status in ACTIVE]
    if to == "success":
        for job in active:
            _finish(job, "success")
    elif to == "failed":
        _finish(active[0], "failed")
        for job in active[1:]:
            _finish(job, "skipped" if job.status == "created" else "canceled")
    else:
        raise ValueError(f"cannot force a pipeline to {to!r}")
    settle(pipeline)


def cancel(pipeline: Pipeline) -> None:
    """Cancel every unfinished job; a finished pipeline stays as it is (GitLab answers 200)."""
    for job in pipeline.current():
        if job.status in ACTIVE:
            _finish(job, "canceled")
    settle(pipeline)


def settle(pipeline: Pipeline) -> None:
    """Once a stage is done: enqueue the next one, or skip the rest after a failure."""
    jobs = pipeline.current()
    if not any(j.status in ("pending", "running") for j in jobs):
        waiting = [j for j in jobs if j.status == "created"]
        if any(j.status == "failed" for j in jobs):
            for job in waiting:
                job.status = "skipped"
        elif waiting:
            for job in waiting:
                if job.stage == waiting[0].stage:
                    job.status = "pending"
    _update(pipeline)


def _finish(job: Job, status: str) -> None:
    job.status = status
    if status != "skipped":
        job.started_at = job.started_at or now()
        job.finished_at = now()


def _update(pipeline: Pipeline) -> None:
    pipeline.status = composite(j.status for j in pipeline.current())
    pipeline.updated_at = now()
    if pipeline.status == "running" and pipeline.started_at is None:
        pipeline.started_at = pipeline.updated_at
    if pipeline.status in FINAL:
        pipeline.finished_at = pipeline.finished_at or pipeline.updated_at
