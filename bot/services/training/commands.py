"""/train: start runs on the model's backend, and answer status, cancel, logs, list and gpus."""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import Clock, utcnow
from bot.config.models import ModelConfig
from bot.config.settings import Settings
from bot.crash import crash_point
from bot.domain.paging import Page
from bot.domain.runs import Run, RunState
from bot.errors import Conflict, ExternalError, NotFound, UserInputError
from bot.intents import TrainStart
from bot.policy import Action
from bot.ports import Cluster, NodeGpus, PendingGpuJob, Pipelines, RepoFiles
from bot.services.access import Access
from bot.services.training.launch import (
    LABEL_SELECTOR,
    Launcher,
    dns_name,
    hp_variable,
    run_variables,
)
from bot.services.training.progress import RunProgress
from bot.store import Store

__all__ = ["LABEL_SELECTOR", "Training", "Usage", "dns_name", "hp_variable", "run_variables"]


@dataclass(frozen=True)
class Usage:
    user: int
    model: int


LIST_PAGE = 10  # active runs per page of /train list
RECENT = 10  # finished runs beside them
QUOTA_LISTED = 10  # runs named when a quota refuses a run


class Training:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        access: Access,
        progress: RunProgress,
        pipelines: Pipelines | None,
        cluster: Cluster | None,
        clock: Clock = utcnow,
        *,
        files: RepoFiles | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.progress = progress
        self.pipelines = pipelines
        self.cluster = cluster
        self.clock = clock
        self.launcher = Launcher(settings, store, progress, pipelines, cluster, clock, files=files)

    def model(self, name: str) -> ModelConfig:
        return self.settings.models[name]

    async def start(self, actor: str, intent: TrainStart, request: str | None = None) -> Run:
        """Record the run, show its card, then ask the backend; a refusal fails the run.
        ``request`` (the Slack delivery's key) makes a replayed command find the run its
        first pass recorded, and give it its pipeline or Job if that pass could not."""
        await self.access.check(actor, Action.TRAIN_START, intent.model)
        if request is not None and (earlier := await self.store.runs.by_request(request)):
            return await self.launcher.resume(earlier) or await self.fresh(earlier)
        config = self.model(intent.model)
        gpus = self.checked_gpus(intent, config)
        self.check_parameters(intent, config)
        await self.check_quota(actor, intent.model, config, gpus)
        run = await self.store.runs.create(
            Run(
                id=0,
                model=intent.model,
                backend=config.training.backend,
                state=RunState.QUEUED,
                requester=actor,
                ref=intent.ref or config.training.default_ref,
                created_at=self.clock(),
                dataset=intent.dataset,
                gpus=gpus,
                params=dict(intent.params),
                project=config.gitlab_project,
                request=request,
            )
        )
        crash_point("run.recorded", run.id)
        await self.progress.show(run)
        try:
            return await self.launcher.launch(run)
        except Exception as exc:
            await self.progress.finish(run, RunState.FAILED, f"could not start: {exc}")
            raise

    def checked_gpus(self, intent: TrainStart, config: ModelConfig) -> int:
        gpus = config.training.default_gpus if intent.gpus is None else intent.gpus
        if gpus > config.training.max_gpus:
            raise UserInputError(
                f"gpus={gpus} is above {intent.model}'s maximum of {config.training.max_gpus}."
            )
        return gpus

    def check_parameters(self, intent: TrainStart, config: ModelConfig) -> None:
        declared = config.training.parameters
        unknown = sorted(set(intent.params) - set(declared)) if declared is not None else []
        if unknown:
            valid = ", ".join(f"`{p}`" for p in declared or []) or "none"
            raise UserInputError(
                f"`{unknown[0]}` is not a parameter of {intent.model}; "
                f"declared parameters: {valid}."
            )

    async def usage(self, actor: str, model: str) -> Usage:
        """GPUs the actor's and the model's active runs hold (summed in SQL: one row read)."""
        user, of_model = await self.store.runs.gpus_in_use(actor, model)
        return Usage(user=user, model=of_model)

    async def check_quota(self, actor: str, model: str, config: ModelConfig, gpus: int) -> None:
        """Refuse a run that would take a user or a model over its concurrent GPU cap."""
        usage = await self.usage(actor, model)
        user_cap = self.settings.training.max_gpus_per_user
        if user_cap is not None and usage.user + gpus > user_cap:
            mine = await self.store.runs.active_of(actor, QUOTA_LISTED + 1)
            listing = ", ".join(f"#{r.id} ({r.gpus})" for r in mine[:QUOTA_LISTED]) or "none"
            listing += ", …" if len(mine) > QUOTA_LISTED else ""
            raise Conflict(
                f"<@{actor}> already uses {usage.user} of {user_cap} GPUs "
                f"(runs {listing}); this run needs {gpus}."
            )
        model_cap = config.training.max_concurrent_gpus
        if model_cap is not None and usage.model + gpus > model_cap:
            raise Conflict(
                f"{model} already uses {usage.model} of {model_cap} GPUs; this run needs {gpus}."
            )

    async def fresh(self, run: Run) -> Run:
        return await self.store.runs.get(run.id) or run

    async def find(self, actor: str, model: str, run_id: int, action: Action) -> Run:
        await self.access.check(actor, action, model)
        run = await self.store.runs.get(run_id)
        if run is None or run.model != model:
            raise NotFound(f"{model} has no run #{run_id}; `/train list {model}` shows its runs.")
        return run

    async def status(self, actor: str, model: str, run_id: int) -> Run:
        return await self.find(actor, model, run_id, Action.TRAIN_VIEW)

    async def cancel(self, actor: str, model: str, run_id: int) -> Run:
        """Cancel the pipeline or delete the Job with its pods: the requester or an admin."""
        run = await self.find(actor, model, run_id, Action.TRAIN_CANCEL)
        if run.requester != actor:
            await self.access.check(actor, Action.OVERRIDE, None)
        if run.state.finished:
            raise Conflict(f"run #{run.id} already {run.state}.")
        await self.stop_backend(run)
        finished = await self.progress.finish(run, RunState.CANCELED, f"canceled by <@{actor}>")
        return finished or await self.fresh(run)

    async def stop_backend(self, run: Run) -> None:
        if run.pipeline_id is not None and run.project and self.pipelines is not None:
            await self.pipelines.cancel(run.project, run.pipeline_id)
        elif run.job_name and run.namespace and self.cluster is not None:
            await self.cluster.delete_job(run.namespace, run.job_name)

    async def logs(self, actor: str, model: str, run_id: int) -> tuple[str, str]:
        run = await self.find(actor, model, run_id, Action.TRAIN_VIEW)
        return await self.progress.log_tail(run)

    async def runs(
        self, actor: str, model: str | None, page: int = 1
    ) -> tuple[Page[Run], Page[Run]]:
        """Page ``page`` of the active runs and of the finished ones (of ``model``)."""
        await self.access.check(actor, Action.TRAIN_VIEW, model)
        active = await self.store.runs.active_page(model, page, LIST_PAGE)
        recent = await self.store.runs.finished_page(model, page, RECENT)
        return active, recent

    async def gpus(self, actor: str) -> tuple[list[NodeGpus], list[PendingGpuJob]]:
        await self.access.check(actor, Action.TRAIN_VIEW, None)
        if self.cluster is None:
            raise ExternalError("Kubernetes is not configured, so GPU capacity is unknown.")
        pending: list[PendingGpuJob] = []
        for namespace in self.namespaces():
            pending += await self.cluster.pending_gpu_jobs(namespace, LABEL_SELECTOR)
        return await self.cluster.gpu_nodes(), pending

    def namespaces(self) -> list[str]:
        found = {
            m.training.kubernetes.namespace
            for m in self.settings.models.values()
            if m.training.backend == "kubernetes"
        }
        return sorted(found)
