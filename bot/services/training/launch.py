"""Giving a recorded run its pipeline or Job, exactly once, also across restarts.

``/train`` writes the run row before it asks the backend, so a bot killed in between leaves a
queued run with no pipeline or Job. ``Launcher.run`` (a background loop, first round at start)
finds such runs and looks their pipeline up by the run's variables (``MLOPS_RUN_ID`` and the
rest) or their Job by its run label before creating one: a run gets one, never two.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import structlog

from bot.clock import Clock, utcnow
from bot.config.models import ModelConfig
from bot.config.settings import Settings
from bot.crash import crash_point
from bot.domain.runs import Run, RunState
from bot.errors import BotError, ExternalError, NotFound
from bot.ports import Cluster, JobSpec, Pipelines, PipelineStatus, RepoFiles
from bot.services.training.progress import RunProgress
from bot.store import Store

log = structlog.get_logger(__name__)
FULL_SHA = re.compile(r"[0-9a-f]{40}")

MANAGED_BY = "app.kubernetes.io/managed-by"
RUN_LABEL = "mlops-bot/run"
MODEL_LABEL = "mlops-bot/model"
LABEL_SELECTOR = f"{MANAGED_BY}=mlops-bot"
CLOCK_SKEW = timedelta(minutes=10)
"""How far GitLab's clock may be behind the bot's when looking pipelines up by time."""


def hp_variable(key: str) -> str:
    """A hyperparameter's CI variable / env name: HP_ plus the key in upper case."""
    return "HP_" + re.sub(r"[^A-Z0-9_]", "_", key.upper())


def dns_name(text: str) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return cleaned[:63].rstrip("-") or "run"


def run_variables(run: Run) -> dict[str, str]:
    values = {
        "MLOPS_RUN_ID": str(run.id),
        "MLOPS_MODEL": run.model,
        "MLOPS_DATASET": run.dataset or "",
        "MLOPS_GPUS": str(run.gpus),
        "MLOPS_REQUESTER": run.requester,
    }
    return values | {hp_variable(k): v for k, v in run.params.items()}


def run_labels(run: Run) -> dict[str, str]:
    return {MANAGED_BY: "mlops-bot", RUN_LABEL: str(run.id), MODEL_LABEL: dns_name(run.model)}


def stranded(run: Run) -> bool:
    """Queued with neither a pipeline nor a Job: its launch was cut short."""
    return run.state == RunState.QUEUED and run.pipeline_id is None and run.job_name is None


class Launcher:
    """Creates a run's pipeline or Job; resumes runs whose launch a restart interrupted."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        progress: RunProgress,
        pipelines: Pipelines | None,
        cluster: Cluster | None,
        clock: Clock = utcnow,
        *,
        every: float = 30.0,
        grace: timedelta = timedelta(minutes=2),
        files: RepoFiles | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.progress = progress
        self.pipelines = pipelines
        self.cluster = cluster
        self.clock = clock
        self.every = every
        self.grace = grace
        self.started = clock()
        self.launching: set[int] = set()
        self.files = files

    # ---- first launch (the /train command) ------------------------------------------------

    async def launch(self, run: Run) -> Run:
        """Create the backend's pipeline or Job for a run just recorded."""
        async with self.claim(run.id):
            return await self.create(run, self.config(run))

    @contextlib.asynccontextmanager
    async def claim(self, run_id: int) -> AsyncIterator[None]:
        """While held, the resume loop leaves this run alone."""
        self.launching.add(run_id)
        try:
            yield
        finally:
            self.launching.discard(run_id)

    def config(self, run: Run) -> ModelConfig:
        config = self.settings.models.get(run.model)
        if config is None:
            raise NotFound(f"{run.model} is no longer in the configuration")
        return config

    async def create(self, run: Run, config: ModelConfig) -> Run:
        if run.backend == "gitlab":
            return await self.create_pipeline(run, config)
        return await self.create_job(run, config)

    def gitlab(self, config: ModelConfig) -> tuple[Pipelines, str]:
        if self.pipelines is None or not config.gitlab_project:
            raise ExternalError(
                "GitLab is not configured for training (gitlab.url, "
                "GITLAB_TOKEN and the model's gitlab_project)."
            )
        return self.pipelines, config.gitlab_project

    def kubernetes(self) -> Cluster:
        if self.cluster is None:
            raise ExternalError("Kubernetes is not configured for training.")
        return self.cluster

    async def create_pipeline(self, run: Run, config: ModelConfig) -> Run:
        pipelines, project = self.gitlab(config)
        status = await pipelines.create(project, run.ref, run_variables(run))
        crash_point("run.launched", run.id)
        return await self.record_pipeline(run, project, status)

    async def record_pipeline(self, run: Run, project: str, status: PipelineStatus) -> Run:
        updated = await self.store.runs.update(
            run.id, pipeline_id=status.id, sha=status.sha, web_url=status.web_url
        )
        assert updated is not None
        await self.progress.pipeline_changed(project, status)
        return await self.store.runs.get(run.id) or updated

    async def commit(self, run: Run, config: ModelConfig) -> str | None:
        """What a Kubernetes run trains: its ref resolved through the model's GitLab project
        now (a Job has no commit of its own), or the ref itself when it is a full sha."""
        if self.files is not None and config.gitlab_project:
            try:
                return await self.files.commit_of(config.gitlab_project, run.ref)
            except BotError as exc:
                log.warning("run_commit_unresolved", run=run.id, ref=run.ref, error=str(exc))
        return run.ref if FULL_SHA.fullmatch(run.ref) else None

    async def create_job(self, run: Run, config: ModelConfig) -> Run:
        if run.sha is None:
            sha = await self.commit(run, config)
            if sha is not None:
                run = await self.store.runs.update(run.id, sha=sha) or run
        spec = self.job_spec(run, config)
        await self.kubernetes().create_job(spec)
        crash_point("run.launched", run.id)
        return await self.record_job(run, spec.name, spec.namespace)

    async def record_job(self, run: Run, name: str, namespace: str) -> Run:
        updated = await self.store.runs.update(run.id, job_name=name, namespace=namespace)
        assert updated is not None
        await self.progress.show(updated)
        return updated

    def job_spec(self, run: Run, config: ModelConfig) -> JobSpec:
        template = config.training.kubernetes
        return JobSpec(
            name=dns_name(f"mlops-{run.model}-{run.id}"),
            namespace=template.namespace,
            image=template.image,
            labels=run_labels(run),
            env={**template.env, **run_variables(run)},
            gpus=run.gpus,
            command=tuple(template.command),
            args=tuple(template.args),
            node_selector=template.node_selector,
            tolerations=tuple(template.tolerations),
            service_account=template.service_account,
            backoff_limit=template.backoff_limit,
            active_deadline_seconds=template.active_deadline_seconds,
            ttl_seconds_after_finished=template.ttl_seconds_after_finished,
            template=template.template,
        )

    # ---- resuming after a restart ---------------------------------------------------------

    async def run(self) -> None:
        """At start and then every ``every`` seconds: resume stranded runs."""
        while True:
            await self.resume_all()
            await asyncio.sleep(self.every)

    async def resume_all(self) -> list[Run]:
        """Look up, else create, the backend of every stranded run nobody is launching."""
        cutoff = max(self.started, self.clock() - self.grace)
        runs = [
            r
            for r in await self.store.runs.active()
            if stranded(r) and r.id not in self.launching and r.created_at < cutoff
        ]
        resumed = []
        for run in runs:
            done = await self.resume(run)
            if done is not None:
                resumed.append(done)
        return resumed

    async def resume(self, run: Run) -> Run | None:
        """The run with its backend found or created; None when someone else is at it, when it
        must wait (GitLab or Kubernetes did not answer) or when it failed (with the reason)."""
        if run.id in self.launching:
            return None
        async with self.claim(run.id):
            return await self.look_up_or_create(run)

    async def look_up_or_create(self, run: Run) -> Run | None:
        fresh = await self.store.runs.get(run.id)
        if fresh is None or not stranded(fresh):
            return None
        try:
            config = self.config(fresh)
            found = await self.look_up(fresh, config)
            log.info("run_resumed", run=fresh.id, found=found is not None)
            return found or await self.create(fresh, config)
        except ExternalError as exc:  # GitLab or Kubernetes did not answer: next round
            log.warning("run_resume_deferred", run=fresh.id, error=str(exc))
        except BotError as exc:
            await self.progress.finish(fresh, RunState.FAILED, f"could not start: {exc}")
        return None

    async def look_up(self, run: Run, config: ModelConfig) -> Run | None:
        """The run's pipeline or Job if the backend already has it (then recorded)."""
        if run.backend == "gitlab":
            pipelines, project = self.gitlab(config)
            since: datetime = run.created_at - CLOCK_SKEW
            status = await pipelines.find(project, run.ref, run_variables(run), since)
            return await self.record_pipeline(run, project, status) if status else None
        namespace = config.training.kubernetes.namespace
        selector = f"{LABEL_SELECTOR},{RUN_LABEL}={run.id},{MODEL_LABEL}={dns_name(run.model)}"
        name = await self.kubernetes().find_job(namespace, selector)
        return await self.record_job(run, name, namespace) if name else None
