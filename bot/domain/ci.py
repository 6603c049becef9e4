"""What a CI card shows, merged from GitLab's events in any order (pure; no I/O).

Events can arrive late, twice or out of order, so merging never moves a job back to an earlier
status, and a pipeline only goes back (finished -> running) when one of its jobs was retried.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ACTIVE = frozenset({"created", "waiting_for_resource", "preparing", "pending", "scheduled"})
FINISHED = frozenset({"success", "failed", "canceled", "skipped"})


def rank(status: str) -> int:
    """How far along a GitLab status is: waiting 0, running/manual 1, finished 2."""
    if status in FINISHED:
        return 2
    return 1 if status in ("running", "manual", "canceling") else 0


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Job(Model):
    id: int
    name: str
    stage: str
    status: str
    allow_failure: bool = False
    failure_reason: str | None = None
    duration: float | None = None
    url: str | None = None
    trace: str | None = None


class MergeRequestRef(Model):
    iid: int
    title: str
    url: str | None = None


class Card(Model):
    """What every CI card has: its project, where it is posted, and routing facts."""

    project: str
    project_url: str | None = None
    default_branch: str = ""
    channels: list[str] = []

    @property
    def key(self) -> str:
        raise NotImplementedError

    @property
    def route_ref(self) -> str:
        """The ref routing rules match: the pipeline's, the deployment's, an MR's target."""
        return ""

    @property
    def route_source(self) -> str:
        return ""


class Pipeline(Card):
    kind: Literal["pipeline"] = "pipeline"
    id: int
    ref: str = ""
    sha: str = ""
    status: str = "created"
    name: str | None = None
    source: str | None = None
    url: str | None = None
    stages: list[str] = []
    jobs: dict[int, Job] = {}
    duration: float | None = None
    finished_at: str | None = None
    commit_title: str | None = None
    commit_url: str | None = None
    author: str | None = None
    user: str | None = None
    merge_request: MergeRequestRef | None = None
    owner: str | None = None
    report: list[dict[str, Any]] | None = None
    replied: list[str] = []  # "<channel>#<job id>": failed jobs already in that card's thread

    @property
    def key(self) -> str:
        return f"pipeline:{self.project}:{self.id}"

    @property
    def route_ref(self) -> str:
        return self.ref

    @property
    def route_source(self) -> str:
        return self.source or ""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def latest_jobs(self) -> list[Job]:
        """The newest job of each name (a retry is a new job with the same name)."""
        newest: dict[str, Job] = {}
        for job in sorted(self.jobs.values(), key=lambda j: j.id):
            newest[job.name] = job
        return sorted(newest.values(), key=lambda j: j.id)


class MergeRequest(Card):
    kind: Literal["merge_request"] = "merge_request"
    iid: int
    title: str = ""
    url: str | None = None
    state: str = "opened"
    action: str | None = None
    source_branch: str = ""
    target_branch: str = ""
    author: str | None = None
    draft: bool = False
    merge_status: str | None = None
    updated_at: str | None = None

    @property
    def key(self) -> str:
        return f"merge_request:{self.project}:{self.iid}"

    @property
    def route_ref(self) -> str:
        return self.target_branch


class Deployment(Card):
    kind: Literal["deployment"] = "deployment"
    id: int
    status: str = "created"
    environment: str = ""
    ref: str = ""
    short_sha: str | None = None
    commit_title: str | None = None
    commit_url: str | None = None
    job_url: str | None = None
    job_id: int | None = None
    environment_url: str | None = None
    user: str | None = None
    changed_at: str | None = None

    @property
    def key(self) -> str:
        return f"deployment:{self.project}:{self.id}"

    @property
    def route_ref(self) -> str:
        return self.ref


CiCard = Pipeline | MergeRequest | Deployment


def _filled(old: BaseModel, new: BaseModel, keep: set[str]) -> dict[str, Any]:
    """Fields of ``new`` that carry a value, except those in ``keep``."""
    return {
        name: value
        for name, value in new
        if name not in keep and value not in (None, "", [], {}) and name in type(old).model_fields
    }


def _merge_job(old: Job | None, new: Job) -> Job:
    if old is None:
        return new
    if rank(new.status) < rank(old.status):
        return old
    return new if new.trace or not old.trace else new.model_copy(update={"trace": old.trace})


def _retried(old: Pipeline, new: Pipeline) -> bool:
    """True when ``new`` shows a job that replaces an older job of the same name."""
    known: dict[str, int] = {}
    for job in old.jobs.values():
        known[job.name] = max(job.id, known.get(job.name, job.id))
    return any(j.id not in old.jobs and j.id > known.get(j.name, j.id) for j in new.jobs.values())


def merge_pipeline(old: Pipeline, new: Pipeline) -> Pipeline:
    jobs = dict(old.jobs)
    for job in new.jobs.values():
        jobs[job.id] = _merge_job(jobs.get(job.id), job)
    keep = {"jobs", "channels", "stages", "owner", "report", "replied"}
    if old.ref and not old.ref.startswith("refs/"):
        keep.add("ref")  # job events of merge-request pipelines say refs/merge-requests/N/head
    if rank(new.status) < rank(old.status) and not _retried(old, new):
        keep |= {"status", "duration", "finished_at"}
    stages = new.stages or old.stages  # only Pipeline Hooks list the stages, in order
    stages = stages + [j.stage for j in jobs.values() if j.stage not in stages]
    return old.model_copy(
        update={
            **_filled(old, new, keep),
            "jobs": jobs,
            "stages": list(dict.fromkeys(stages)),
            "channels": _union(old.channels, new.channels),
            "replied": _union(old.replied, new.replied),
            "owner": new.owner or old.owner,
            "report": old.report if old.report is not None else new.report,
        }
    )


def merge_merge_request(old: MergeRequest, new: MergeRequest) -> MergeRequest:
    if old.updated_at and new.updated_at and new.updated_at < old.updated_at:
        return old.model_copy(update={"channels": _union(old.channels, new.channels)})
    update = _filled(old, new, {"channels"}) | {"draft": new.draft}
    return old.model_copy(update={**update, "channels": _union(old.channels, new.channels)})


def merge_deployment(old: Deployment, new: Deployment) -> Deployment:
    keep = {"channels"}
    if rank(new.status) < rank(old.status):
        keep |= {"status", "changed_at"}
    update = _filled(old, new, keep)
    return old.model_copy(update={**update, "channels": _union(old.channels, new.channels)})


def merge(old: CiCard | None, new: CiCard) -> CiCard:
    """``old`` with what ``new`` (one event's view) adds; in any order the jobs, stages and
    status come out the same."""
    if old is None:
        return _with_job_stages(new) if isinstance(new, Pipeline) else new
    if isinstance(old, Pipeline) and isinstance(new, Pipeline):
        return merge_pipeline(old, new)
    if isinstance(old, MergeRequest) and isinstance(new, MergeRequest):
        return merge_merge_request(old, new)
    if isinstance(old, Deployment) and isinstance(new, Deployment):
        return merge_deployment(old, new)
    raise ValueError(f"cannot merge a {new.kind} into a {old.kind}")


def _with_job_stages(pipeline: Pipeline) -> Pipeline:
    """Stages known only from jobs (no Pipeline Hook yet) are shown in the order jobs came."""
    stages = [*pipeline.stages, *(j.stage for j in pipeline.jobs.values() if j.stage)]
    return pipeline.model_copy(update={"stages": list(dict.fromkeys(stages))})


def _union(first: list[str], second: list[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def card_from_json(data: dict[str, Any]) -> CiCard:
    kind = data.get("kind")
    if kind == "merge_request":
        return MergeRequest.model_validate(data)
    if kind == "deployment":
        return Deployment.model_validate(data)
    return Pipeline.model_validate(data)
