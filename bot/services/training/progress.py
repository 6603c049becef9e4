"""How a run goes: backend updates move its state once, the card follows, results get judged."""

from __future__ import annotations

from typing import Any

import structlog

from bot.clock import Clock, utcnow
from bot.config.settings import Settings
from bot.config.training import Gate
from bot.domain.accuracy import Champion, MetricsError, Verdict, judge, parse_metrics
from bot.domain.runs import GAVE_UP_PENDING, Run, RunState, gave_up_pending, waiting_to_start
from bot.errors import BotError
from bot.ports import Cluster, JobUpdate, ObjectStore, PipelineJob, Pipelines, PipelineStatus
from bot.services.cards import Cards
from bot.services.monitoring.references import keep_reference
from bot.store import Store
from bot.store.runs import ACTIVE
from bot.views.runs import log_tail, run_card

log = structlog.get_logger(__name__)

GITLAB_STATES = {
    "running": RunState.RUNNING,
    "success": RunState.SUCCEEDED,
    "failed": RunState.FAILED,
    "canceled": RunState.CANCELED,
    "canceling": RunState.CANCELED,
    "skipped": RunState.CANCELED,
}
JOB_PHASES = {
    "pending": RunState.QUEUED,
    "running": RunState.RUNNING,
    "succeeded": RunState.SUCCEEDED,
    "failed": RunState.FAILED,
}
RUN_LABEL = "mlops-bot/run"
LOG_LINES = 30


def current_stage(jobs: tuple[PipelineJob, ...]) -> str | None:
    for wanted in ("running", "pending", "created"):
        job = next((j for j in jobs if j.status == wanted), None)
        if job is not None:
            return f"{job.stage}/{job.name}"
    return None


def card_key(run: Run) -> str:
    return f"run:{run.id}"


class RunProgress:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        cards: Cards,
        pipelines: Pipelines | None,
        cluster: Cluster | None,
        objects: ObjectStore | None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.cards = cards
        self.pipelines = pipelines
        self.cluster = cluster
        self.objects = objects
        self.clock = clock

    async def show(self, run: Run) -> None:
        config = self.settings.models[run.model]
        first = next(iter(config.environments), None) if config.deploy.image_repository else None
        message = run_card(run, self.clock(), first)
        await self.cards.publish(card_key(run), config.channel, message)

    async def pipeline_changed(self, project: str, pipeline: PipelineStatus) -> bool:
        """A pipeline moved (webhook or poll); True when it belongs to a run."""
        run = await self.store.runs.by_pipeline(project, pipeline.id)
        if run is None:
            return False
        state = GITLAB_STATES.get(pipeline.status, RunState.QUEUED)
        await self.advance(
            run,
            state,
            stage=current_stage(pipeline.jobs),
            sha=pipeline.sha,
            web_url=pipeline.web_url or run.web_url,
        )
        if state.finished:
            await self.finish(run, state, failing_job_note(pipeline), pipeline=pipeline)
        return True

    async def job_changed(self, update: JobUpdate) -> None:
        """A Kubernetes Job of the bot's moved, or is still pending (from the namespace's one
        watch, which reports pending jobs again now and then)."""
        raw = update.labels.get(RUN_LABEL, "")
        run = await self.store.runs.get(int(raw)) if raw.isdigit() else None
        if run is None:
            return
        if run.state.finished:
            await self.reap(run, update)
            return
        if update.deleted:
            await self.finish(run, RunState.CANCELED, "the Job was deleted")
            return
        state = JOB_PHASES.get(update.phase, RunState.QUEUED)
        if state == RunState.QUEUED and await self.give_up_pending(run, update):
            return
        stage = f"pod {update.pod}" if update.pod else run.stage
        if (run.state, run.stage, run.detail) == (state, stage, update.reason):
            return  # the same again (a resync): nothing to record or show
        await self.advance(run, state, stage=stage, detail=update.reason)
        if state.finished:
            await self.finish(run, state, update.reason, pod=update.pod)

    async def give_up_pending(self, run: Run, update: JobUpdate) -> bool:
        """Fail a run that waited longer than its model's pending timeout to start, with the
        reason it waits, and delete its Job (and pods); True when it did."""
        config = self.settings.models.get(run.model)
        limit = config.training.kubernetes.pending_timeout_seconds if config else None
        waited = waiting_to_start(run, self.clock())
        if limit is None or waited is None or waited.total_seconds() <= limit:
            return False
        done = await self.finish(run, RunState.FAILED, gave_up_pending(limit, update.reason))
        if done is not None:
            log.info("run_pending_too_long", run=run.id, job=update.name, limit=limit)
            await self.reap(done, update)
        return True

    async def reap(self, run: Run, update: JobUpdate) -> None:
        """Delete the still-pending Job of a run failed for waiting too long (again after a
        failed delete or a restart in between)."""
        gave_up = run.state == RunState.FAILED and run.detail.startswith(GAVE_UP_PENDING)
        if not gave_up or update.deleted or update.phase != "pending" or self.cluster is None:
            return
        try:
            await self.cluster.delete_job(update.namespace, update.name)
        except BotError as exc:
            log.warning("pending_job_delete_failed", run=run.id, job=update.name, error=str(exc))

    async def advance(self, run: Run, state: RunState, **changes: str | None) -> None:
        """Record progress of an active run (never moves a finished run) and show it."""
        values: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        if state == RunState.RUNNING and run.started_at is None:
            values["started_at"] = self.clock()
        if not state.finished:
            values["state"] = state
        updated = await self.store.runs.update(run.id, only_if=ACTIVE, **values)
        if updated is not None:
            await self.show(updated)

    async def finish(
        self,
        run: Run,
        state: RunState,
        detail: str = "",
        *,
        pipeline: PipelineStatus | None = None,
        pod: str | None = None,
    ) -> Run | None:
        """Move an active run to its final state exactly once, then show or explain it. A
        succeeded run is judged first and its verdict lands in the same update: a crash never
        leaves it succeeded and unjudged (until that update the run is active, and its
        backend reports it again)."""
        if run.state.finished:
            return None
        results = await self.results(run, pipeline) if state == RunState.SUCCEEDED else {}
        done = await self.store.runs.update(
            run.id,
            only_if=ACTIVE,
            state=state,
            finished_at=self.clock(),
            detail=detail[:500],
            **results,
        )
        if done is None:
            return None
        log.info("run_finished", run=done.id, state=str(state))
        await self.show(done)
        if state == RunState.FAILED:
            await self.post_failure(done, pipeline, pod)
        return done

    async def results(self, run: Run, pipeline: PipelineStatus | None) -> dict[str, Any]:
        """A succeeded run's metrics, test set and gate verdict, as its final update stores
        them; a verdict that did not pass, with the reason, when they cannot be read."""
        try:
            report = parse_metrics(await self.metrics_file(run, pipeline))
        except MetricsError as exc:
            return {"verdict": Verdict(passed=False, reasons=[str(exc)]).to_json()}
        except BotError as exc:
            reason = f"the metrics could not be read: {exc}"
            return {"verdict": Verdict(passed=False, reasons=[reason]).to_json()}
        await keep_reference(self, run, pipeline)  # reference.json beside the metrics
        verdict = judge(report, await self.champion(run), self.gate(run))
        return {
            "metrics": report.metrics,
            "test_set": report.test_set,
            "verdict": verdict.to_json(),
        }

    def gate(self, run: Run) -> Gate:
        return self.settings.models[run.model].training.gate

    async def champion(self, run: Run) -> Champion | None:
        return await self.champion_of(run.model)

    async def champion_of(self, model: str) -> Champion | None:
        """The run whose image is deployed to production now, else the configured baseline."""
        config = self.settings.models[model]
        prod = (
            "prod" if "prod" in config.environments else next(reversed(config.environments), None)
        )
        deployed = await self.store.deployments.last_good(model, prod) if prod else None
        run = await self.store.runs.get(deployed.run_id) if deployed and deployed.run_id else None
        if run is not None and run.metrics:
            return Champion(f"run #{run.id} (in {prod})", dict(run.metrics), run.test_set)
        baseline = config.training.baseline
        if baseline is None:
            return None
        return Champion("the baseline", dict(baseline.metrics), baseline.test_set)

    async def metrics_file(self, run: Run, pipeline: PipelineStatus | None) -> bytes:
        data = await self.fetch_metrics(run, pipeline)
        if data is None:
            raise MetricsError("no metrics file was found")
        return data

    async def fetch_metrics(self, run: Run, pipeline: PipelineStatus | None) -> bytes | None:
        config = self.settings.models[run.model].training
        if run.backend == "gitlab" and self.pipelines and run.project and pipeline is not None:
            job = next((j for j in pipeline.jobs if j.name == config.gitlab.metrics_job), None)
            if job is None:
                raise MetricsError(f"the pipeline has no job `{config.gitlab.metrics_job}`")
            return await self.pipelines.job_artifact(
                run.project, job.id, config.gitlab.metrics_path
            )
        bucket = config.kubernetes.metrics_bucket
        if run.backend == "kubernetes" and self.objects and bucket:
            key = config.kubernetes.metrics_key.format(run_id=run.id, model=run.model)
            return await self.objects.read(bucket, key)
        return None

    async def post_failure(
        self, run: Run, pipeline: PipelineStatus | None, pod: str | None
    ) -> None:
        """The failing job or pod and its last lines, in the card's thread."""
        try:
            where, text = await self.failure_log(run, pipeline, pod)
        except Exception as exc:
            where, text = "the failure", f"(log unavailable: {type(exc).__name__})"
        await self.cards.reply(card_key(run), log_tail(where, text))

    async def failure_log(
        self, run: Run, pipeline: PipelineStatus | None, pod: str | None
    ) -> tuple[str, str]:
        if pipeline is not None and self.pipelines and run.project:
            job = next((j for j in pipeline.jobs if j.status == "failed"), None)
            if job is not None:
                text = await self.pipelines.job_log_tail(run.project, job.id, LOG_LINES)
                return f"failed job {job.name}", text
        if run.job_name and run.namespace and self.cluster is not None:
            text = await self.cluster.pod_log_tail(run.namespace, run.job_name, LOG_LINES)
            return f"failed pod {pod or run.job_name}", text
        return "the failure", run.detail or "(no log)"

    async def log_tail(self, run: Run) -> tuple[str, str]:
        """The newest log of a run: its current or last job's trace, or its pod's log."""
        if run.pipeline_id is not None and run.project and self.pipelines is not None:
            status = await self.pipelines.status(run.project, run.pipeline_id)
            started = [
                j
                for j in status.jobs
                if j.status not in ("created", "pending", "skipped", "manual")
            ]
            if not started:
                return f"run #{run.id}", "(no job has started yet)"
            job = started[-1]
            return f"job {job.name}", await self.pipelines.job_log_tail(
                run.project, job.id, LOG_LINES
            )
        if run.job_name and run.namespace and self.cluster is not None:
            text = await self.cluster.pod_log_tail(run.namespace, run.job_name, LOG_LINES)
            return f"job {run.job_name}", text
        return f"run #{run.id}", "(no backend job yet)"


def failing_job_note(pipeline: PipelineStatus) -> str:
    job = next((j for j in pipeline.jobs if j.status == "failed"), None)
    return f"job {job.name} failed" if job else ""  # plain: the card escapes details
