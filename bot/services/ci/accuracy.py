"""Accuracy of any finished pipeline of a model's project (merge requests too): the metrics
artifact judged against the champion, as blocks for the CI card."""

from __future__ import annotations

from bot.config.settings import Settings
from bot.domain.accuracy import MetricsError, Verdict, judge, parse_metrics
from bot.ports import Pipelines, PipelineStatus
from bot.services.training.progress import RunProgress
from bot.views.blocks import Block
from bot.views.runs import verdict_blocks


class PipelineAccuracy:
    def __init__(self, settings: Settings, pipelines: Pipelines, progress: RunProgress) -> None:
        self.settings = settings
        self.pipelines = pipelines
        self.progress = progress

    def model_of(self, project: str) -> str | None:
        return next(
            (name for name, m in self.settings.models.items() if m.gitlab_project == project), None
        )

    async def pipeline_report(self, project: str, pipeline: PipelineStatus) -> list[Block] | None:
        """None when the pipeline is not a model's or produced no metrics artifact."""
        model = self.model_of(project)
        if model is None or pipeline.status != "success":
            return None
        config = self.settings.models[model].training
        job = next((j for j in pipeline.jobs if j.name == config.gitlab.metrics_job), None)
        if job is None:
            return None
        raw = await self.pipelines.job_artifact(project, job.id, config.gitlab.metrics_path)
        if raw is None:
            return None
        try:
            report = parse_metrics(raw)
        except MetricsError as exc:
            return verdict_blocks(None, Verdict(passed=False, reasons=[str(exc)]))
        verdict = judge(report, await self.progress.champion_of(model), config.gate)
        return verdict_blocks(report, verdict)
