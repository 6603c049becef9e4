"""A run's reference profile: ``reference.json`` (or a sample, ``reference.jsonl``) beside its
metrics file, read when the metrics are and kept with the run (docs/monitoring.md)."""

from __future__ import annotations

import posixpath
from typing import Protocol

import structlog

from bot.clock import Clock
from bot.config.settings import Settings
from bot.domain.monitoring.profiles import reference_from_sample
from bot.domain.monitoring.reference import ReferenceError, parse_reference
from bot.domain.runs import Run
from bot.errors import BotError
from bot.ports import ObjectStore, Pipelines, PipelineStatus
from bot.store import Store
from bot.store.monitoring import MonitoringStore

log = structlog.get_logger(__name__)
PROFILE = "reference.json"
SAMPLE = "reference.jsonl"


class RunSources(Protocol):
    """What reads a run's metrics (bot.services.training.progress.RunProgress)."""

    settings: Settings
    store: Store
    pipelines: Pipelines | None
    objects: ObjectStore | None
    clock: Clock


async def keep_reference(source: RunSources, run: Run, pipeline: PipelineStatus | None) -> None:
    """Read the run's reference beside its metrics and keep it (or why it is unusable);
    a run without one keeps nothing. Never fails the run's judgement."""
    try:
        for name in (PROFILE, SAMPLE):
            found = await _read(source, run, pipeline, name)
            if found is not None:
                await _keep(source, run, *found, sample=name == SAMPLE)
                return
    except BotError as exc:
        log.warning("monitoring.reference_unread", run=run.id, error=str(exc))


async def _keep(source: RunSources, run: Run, where: str, raw: bytes, *, sample: bool) -> None:
    store = MonitoringStore(source.store.db)
    try:
        reference = reference_from_sample(raw) if sample else parse_reference(raw)
    except ReferenceError as exc:
        await store.keep_reference(run.id, where, None, str(exc), source.clock())
        log.info("monitoring.reference_invalid", run=run.id, where=where)
        return
    await store.keep_reference(run.id, where, reference.to_json(), None, source.clock())
    log.info("monitoring.reference_kept", run=run.id, where=where)


async def _read(
    source: RunSources, run: Run, pipeline: PipelineStatus | None, name: str
) -> tuple[str, bytes] | None:
    config = source.settings.models[run.model].training
    if run.backend == "gitlab" and source.pipelines and run.project and pipeline is not None:
        job = next((j for j in pipeline.jobs if j.name == config.gitlab.metrics_job), None)
        if job is None:
            return None
        path = beside(config.gitlab.metrics_path, name)
        raw = await source.pipelines.job_artifact(run.project, job.id, path)
        return (f"job {job.id} artifact {path}", raw) if raw is not None else None
    bucket = config.kubernetes.metrics_bucket
    if run.backend == "kubernetes" and source.objects and bucket:
        key = beside(config.kubernetes.metrics_key.format(run_id=run.id, model=run.model), name)
        raw = await source.objects.read(bucket, key)
        return (f"s3://{bucket}/{key}", raw) if raw is not None else None
    return None


def beside(metrics_path: str, name: str) -> str:
    """The path of ``name`` in the metrics file's directory."""
    return posixpath.join(posixpath.dirname(metrics_path), name)
