"""CI cards: a pipeline with its stages, a merge request, a deployment, a failed job's trace."""

from __future__ import annotations

from bot.domain.ci import ACTIVE, CiCard, Deployment, Job, MergeRequest, Pipeline
from bot.views.blocks import Block, Message, code, context, escape, section

ICONS = {
    "success": ":white_check_mark:",
    "failed": ":x:",
    "canceled": ":no_entry_sign:",
    "canceling": ":no_entry_sign:",
    "running": ":large_blue_circle:",
    "manual": ":raised_hand:",
    "skipped": ":fast_forward:",
    "scheduled": ":alarm_clock:",
    "blocked": ":raised_hand:",
    "opened": ":large_green_circle:",
    "merged": ":purple_heart:",
    "closed": ":no_entry_sign:",
}
WORDS = {
    "success": "passed",
    "manual": "waiting for a manual job",
    "waiting_for_resource": "waiting",
}
TRACE_CHARS = 2800


def icon(status: str) -> str:
    return ICONS.get(status, ":hourglass_flowing_sand:")


def word(status: str) -> str:
    return WORDS.get(status, status.replace("_", " "))


def link(url: str | None, text: str) -> str:
    return f"<{url}|{escape(text)}>" if url else escape(text)


def duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s"]
    return " ".join(p for p in parts if p) if total else "0s"


def stage_status(jobs: list[Job]) -> str:
    """One status for a stage, from its newest jobs (allowed failures do not fail it)."""
    statuses = {j.status for j in jobs}
    failed = any(j.status == "failed" and not j.allow_failure for j in jobs)
    for status, holds in (
        ("running", "running" in statuses),
        ("pending", bool(statuses & ACTIVE)),
        ("failed", failed),
        ("canceled", "canceled" in statuses),
        ("manual", "manual" in statuses),
        ("skipped", statuses == {"skipped"}),
    ):
        if holds:
            return status
    return "success"


def stages(pipeline: Pipeline) -> list[tuple[str, str]]:
    """Each stage in pipeline order with its status; stages without jobs are left out."""
    latest = pipeline.latest_jobs()
    result = []
    for stage in pipeline.stages:
        jobs = [j for j in latest if j.stage == stage]
        if jobs:
            result.append((stage, stage_status(jobs)))
    return result


def stage_line(pipeline: Pipeline) -> str | None:
    shown = [f"{icon(status)} {escape(stage)}" for stage, status in stages(pipeline)]
    return "  →  ".join(shown) if shown else None


def commit_line(pipeline: Pipeline) -> str | None:
    if not pipeline.sha:
        return None
    line = f"{link(pipeline.commit_url, pipeline.sha[:8])}"
    if pipeline.commit_title:
        line += f" {escape(pipeline.commit_title)}"
    if pipeline.author:
        line += f" · by {escape(pipeline.author)}"
    request = pipeline.merge_request
    if request is not None:
        line += f"\nMR {link(request.url, f'!{request.iid} {request.title}')}"
    return line


def pipeline_context(pipeline: Pipeline) -> str:
    facts = [code(pipeline.project)]
    took = duration(pipeline.duration) if pipeline.finished else None
    if took:
        facts.append(f"took {took}")
    if pipeline.user:
        facts.append(f"started by {escape(pipeline.user)}")
    if pipeline.source:
        facts.append(f"source {escape(pipeline.source)}")
    return " · ".join(facts)


def failed_jobs_line(pipeline: Pipeline) -> str | None:
    failed = [j for j in pipeline.latest_jobs() if j.status == "failed"]
    if not failed:
        return None
    names = ", ".join(f"{link(j.url, j.name)}" + _allowed(j) for j in failed)
    return f"Failed: {names}"


def _allowed(job: Job) -> str:
    return " (allowed to fail)" if job.allow_failure else ""


def pipeline_card(pipeline: Pipeline) -> Message:
    name = f"Pipeline #{pipeline.id}"
    head = (
        f"{icon(pipeline.status)} *{link(pipeline.url, name)}* {word(pipeline.status)}"
        f" · {code(pipeline.ref)}"
    )
    body = [head] + [
        line
        for line in (stage_line(pipeline), commit_line(pipeline), failed_jobs_line(pipeline))
        if line
    ]
    blocks: list[Block] = [section("\n".join(body)), context(pipeline_context(pipeline))]
    blocks.extend(pipeline.report or [])
    text = f"{name} {word(pipeline.status)}: {escape(pipeline.project)} {escape(pipeline.ref)}"
    return Message(text=text, blocks=blocks)


def job_failure(job: Job, trace: str | None) -> Message:
    """The thread reply for a failed job: its name, why, and the end of its log."""
    reason = f" ({escape(job.failure_reason)})" if job.failure_reason else ""
    head = f":x: Job *{link(job.url, job.name)}* failed{reason}{_allowed(job)}"
    blocks = [section(head)]
    if trace:
        blocks.append(section(f"```{escape(trace[-TRACE_CHARS:], in_code=True)}```"))
    else:
        blocks.append(context("no trace available here; open the job for its log"))
    return Message(text=f"Job {escape(job.name)} failed{reason}", blocks=blocks)


def merge_request_card(request: MergeRequest) -> Message:
    name = f"!{request.iid} {request.title}"
    draft = " (draft)" if request.draft else ""
    head = f"{icon(request.state)} *{link(request.url, name)}*{draft} {word(request.state)}"
    branches = f"{code(request.source_branch)} → {code(request.target_branch)}"
    facts = [code(request.project)]
    if request.author:
        facts.append(f"by {escape(request.author)}")
    if request.merge_status:
        facts.append(escape(word(request.merge_status)))
    return Message(
        text=f"MR {escape(name)} {word(request.state)} in {escape(request.project)}",
        blocks=[section(f"{head}\n{branches}"), context(" · ".join(facts))],
    )


def deployment_card(deployment: Deployment) -> Message:
    target = link(deployment.environment_url, deployment.environment or "an environment")
    head = (
        f"{icon(deployment.status)} *Deployment to {target}* {word(deployment.status)}"
        f" · deployment #{deployment.id}"
    )
    if deployment.job_url:
        label = f"job #{deployment.job_id}" if deployment.job_id else "job"
        head += f" · {link(deployment.job_url, label)}"
    lines = [head]
    if deployment.short_sha:
        commit = link(deployment.commit_url, deployment.short_sha)
        lines.append(f"{commit} {escape(deployment.commit_title or '')}".rstrip())
    facts = [code(deployment.project)]
    if deployment.user:
        facts.append(f"by {escape(deployment.user)}")
    return Message(
        text=f"Deployment to {escape(deployment.environment)} {word(deployment.status)}",
        blocks=[section("\n".join(lines)), context(" · ".join(facts))],
    )


def ci_card(card: CiCard) -> Message:
    if isinstance(card, Pipeline):
        return pipeline_card(card)
    if isinstance(card, MergeRequest):
        return merge_request_card(card)
    return deployment_card(card)
