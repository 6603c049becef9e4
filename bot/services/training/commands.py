"""/train: start runs on the model's backend, and answer status, cancel, logs, list and gpus."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.clock import Clock, utcnow
from bot.config.models import ModelConfig
from bot.config.settings import Settings
from bot.domain.runs import Run, RunState
from bot.errors import Conflict, ExternalError, NotFound, UserInputError
from bot.intents import TrainStart
from bot.policy import Action
from bot.ports import Cluster, JobSpec, NodeGpus, PendingGpuJob, Pipelines
from bot.services.access import Access
from bot.services.training.progress import RunProgress
from bot.store import Store

MANAGED_BY = "app.kubernetes.io/managed-by"
RUN_LABEL = "mlops-bot/run"
LABEL_SELECTOR = f"{MANAGED_BY}=mlops-bot"


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


@dataclass(frozen=True)
class Usage:
    user: int
    model: int
    runs: list[Run]


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
    ) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.progress = progress
        self.pipelines = pipelines
        self.cluster = cluster
        self.clock = clock

    def model(self, name: str) -> ModelConfig:
        return self.settings.models[name]

    async def start(self, actor: str, intent: TrainStart) -> Run:
        """Record the run, show its card, then ask the backend; a refusal fails the run."""
        await self.access.check(actor, Action.TRAIN_START, intent.model)
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
            )
        )
        await self.progress.show(run)
        try:
            return await self.launch(run, config)
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
        active = await self.store.runs.active()
        mine = [r for r in active if r.requester == actor]
        return Usage(
            user=sum(r.gpus for r in mine),
            model=sum(r.gpus for r in active if r.model == model),
            runs=mine,
        )

    async def check_quota(self, actor: str, model: str, config: ModelConfig, gpus: int) -> None:
        """Refuse a run that would take a user or a model over its concurrent GPU cap."""
        usage = await self.usage(actor, model)
        user_cap = self.settings.training.max_gpus_per_user
        listing = ", ".join(f"#{r.id} ({r.gpus})" for r in usage.runs) or "none"
        if user_cap is not None and usage.user + gpus > user_cap:
            raise Conflict(
                f"<@{actor}> already uses {usage.user} of {user_cap} GPUs "
                f"(runs {listing}); this run needs {gpus}."
            )
        model_cap = config.training.max_concurrent_gpus
        if model_cap is not None and usage.model + gpus > model_cap:
            raise Conflict(
                f"{model} already uses {usage.model} of {model_cap} GPUs; this run needs {gpus}."
            )

    async def launch(self, run: Run, config: ModelConfig) -> Run:
        if run.backend == "gitlab":
            return await self.launch_pipeline(run, config)
        return await self.launch_job(run, config)

    async def launch_pipeline(self, run: Run, config: ModelConfig) -> Run:
        if self.pipelines is None or not config.gitlab_project:
            raise ExternalError(
                "GitLab is not configured for training (gitlab.url, "
                "GITLAB_TOKEN and the model's gitlab_project)."
            )
        status = await self.pipelines.create(config.gitlab_project, run.ref, run_variables(run))
        updated = await self.store.runs.update(
            run.id, pipeline_id=status.id, sha=status.sha, web_url=status.web_url
        )
        assert updated is not None
        await self.progress.pipeline_changed(config.gitlab_project, status)
        return await self.fresh(updated)

    async def launch_job(self, run: Run, config: ModelConfig) -> Run:
        if self.cluster is None:
            raise ExternalError("Kubernetes is not configured for training.")
        spec = self.job_spec(run, config)
        await self.cluster.create_job(spec)
        updated = await self.store.runs.update(run.id, job_name=spec.name, namespace=spec.namespace)
        assert updated is not None
        await self.progress.show(updated)
        return updated

    def job_spec(self, run: Run, config: ModelConfig) -> JobSpec:
        template = config.training.kubernetes
        return JobSpec(
            name=dns_name(f"mlops-{run.model}-{run.id}"),
            namespace=template.namespace,
            image=template.image,
            labels={
                MANAGED_BY: "mlops-bot",
                RUN_LABEL: str(run.id),
                "mlops-bot/model": dns_name(run.model),
            },
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

    async def runs(self, actor: str, model: str | None) -> tuple[list[Run], list[Run]]:
        await self.access.check(actor, Action.TRAIN_VIEW, model)
        active = [r for r in await self.store.runs.active() if model in (None, r.model)]
        recent = [r for r in await self.store.runs.recent(model, 10) if r.state.finished]
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
