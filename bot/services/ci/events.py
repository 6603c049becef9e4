"""GitLab webhook payloads -> what one event says about a card (pure; shapes as GitLab documents).

Pipeline Hook, Job Hook, Merge Request Hook and Deployment Hook are read; anything the bot needs
but cannot find raises ``Unreadable`` (the delivery is then kept as ignored, with the reason).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.config.webhooks import EventKind
from bot.domain.ci import CiCard, Deployment, Job, MergeRequest, MergeRequestRef, Pipeline

HEADER_KINDS = {
    "Pipeline Hook": EventKind.PIPELINE,
    "Job Hook": EventKind.JOB,
    "Merge Request Hook": EventKind.MERGE_REQUEST,
    "Deployment Hook": EventKind.DEPLOYMENT,
}
OBJECT_KINDS = {
    "pipeline": EventKind.PIPELINE,
    "build": EventKind.JOB,
    "merge_request": EventKind.MERGE_REQUEST,
    "deployment": EventKind.DEPLOYMENT,
}
TRACE_LINES = 30
# Terminal colours and GitLab's collapsible-section markers, which make no sense in Slack.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|section_(?:start|end):\d+:[\w.-]+\r?")
Body = Mapping[str, Any]


class Unreadable(ValueError):
    """A delivery of a known kind whose body lacks what the bot needs."""


@dataclass(frozen=True)
class Event:
    """One event: the card as it shows it, plus the (kind, status) pairs to route it by."""

    card: CiCard
    routes: tuple[tuple[EventKind, str], ...]


def event_kind(header: str | None, body: Body) -> EventKind | None:
    """The kind from ``X-Gitlab-Event``, else from ``object_kind``; None for unused kinds."""
    if header in HEADER_KINDS:
        return HEADER_KINDS[header]
    return OBJECT_KINDS.get(str(body.get("object_kind", "")))


def project_path(body: Body) -> str | None:
    path = _obj(body, "project").get("path_with_namespace")
    return path if isinstance(path, str) and path else None


def parse(kind: EventKind, body: Body) -> Event:
    parsers = {
        EventKind.PIPELINE: pipeline_event,
        EventKind.JOB: job_event,
        EventKind.MERGE_REQUEST: merge_request_event,
        EventKind.DEPLOYMENT: deployment_event,
    }
    try:
        return parsers[kind](body)
    except (TypeError, ValueError, AttributeError) as err:
        if isinstance(err, Unreadable):
            raise
        raise Unreadable(f"{kind} payload not understood: {type(err).__name__}") from None


def pipeline_event(body: Body) -> Event:
    attrs = _obj(body, "object_attributes")
    commit = _obj(body, "commit")
    base = _project(body)
    pipeline_id = _int(attrs.get("id"), "object_attributes.id")
    web_url = base["project_url"]
    pipeline = Pipeline(
        **base,
        id=pipeline_id,
        ref=_text(attrs.get("ref")) or "",
        sha=_text(attrs.get("sha")) or "",
        status=_text(attrs.get("status")) or "created",
        name=_text(attrs.get("name")),
        source=_text(attrs.get("source")),
        url=_text(attrs.get("url")) or _link(web_url, f"/-/pipelines/{pipeline_id}"),
        stages=[str(s) for s in attrs.get("stages") or []],
        jobs={job.id: job for job in (_build(b, web_url) for b in _list(body, "builds"))},
        duration=_number(attrs.get("duration")),
        finished_at=_text(attrs.get("finished_at")),
        commit_title=_first_line(commit.get("title") or commit.get("message")),
        commit_url=_text(commit.get("url")),
        author=_text(_obj(commit, "author").get("name")),
        user=_text(_obj(body, "user").get("name")),
        merge_request=_merge_request_ref(body.get("merge_request")),
    )
    return Event(pipeline, ((EventKind.PIPELINE, pipeline.status),))


def job_event(body: Body) -> Event:
    commit = _obj(body, "commit")
    base = _project(body)
    web_url = base["project_url"]
    job_id = _int(body.get("build_id"), "build_id")
    pipeline_id = _int(body.get("pipeline_id"), "pipeline_id")
    job = Job(
        id=job_id,
        name=_text(body.get("build_name")) or f"job {job_id}",
        stage=_text(body.get("build_stage")) or "",
        status=_text(body.get("build_status")) or "created",
        allow_failure=body.get("build_allow_failure") is True,
        failure_reason=_text(body.get("build_failure_reason")),
        duration=_number(body.get("build_duration")),
        url=_link(web_url, f"/-/jobs/{job_id}"),
        trace=tail(body.get("trace")),
    )
    sha = _text(body.get("sha")) or ""
    pipeline = Pipeline(
        **base,
        id=pipeline_id,
        ref=_text(body.get("ref")) or "",
        sha=sha,
        status=_text(commit.get("status")) or "running",
        name=_text(commit.get("name")),
        url=_link(web_url, f"/-/pipelines/{pipeline_id}"),
        jobs={job_id: job},
        duration=_number(commit.get("duration")),
        finished_at=_text(commit.get("finished_at")),
        commit_title=_first_line(commit.get("message")),
        commit_url=_link(web_url, f"/-/commit/{sha}") if sha else None,
        author=_text(commit.get("author_name")),
        user=_text(_obj(body, "user").get("name")),
    )
    routes = ((EventKind.JOB, job.status), (EventKind.PIPELINE, pipeline.status))
    return Event(pipeline, routes)


def merge_request_event(body: Body) -> Event:
    attrs = _obj(body, "object_attributes")
    request = MergeRequest(
        **_project(body),
        iid=_int(attrs.get("iid"), "object_attributes.iid"),
        title=_text(attrs.get("title")) or "",
        url=_text(attrs.get("url")),
        state=_text(attrs.get("state")) or "opened",
        action=_text(attrs.get("action")),
        source_branch=_text(attrs.get("source_branch")) or "",
        target_branch=_text(attrs.get("target_branch")) or "",
        author=_text(_obj(body, "user").get("name")),
        draft=attrs.get("draft") is True,
        merge_status=_text(attrs.get("detailed_merge_status")),
        updated_at=_text(attrs.get("updated_at")),
    )
    routes = ((EventKind.MERGE_REQUEST, request.state),)
    return Event(request, routes)


def deployment_event(body: Body) -> Event:
    deployment = Deployment(
        **_project(body),
        id=_int(body.get("deployment_id"), "deployment_id"),
        status=_text(body.get("status")) or "created",
        environment=_text(body.get("environment")) or "",
        ref=_text(body.get("ref")) or "",
        short_sha=_text(body.get("short_sha")),
        commit_title=_first_line(body.get("commit_title")),
        commit_url=_text(body.get("commit_url")),
        job_url=_text(body.get("deployable_url")),
        job_id=_optional_int(body.get("deployable_id")),
        environment_url=_text(body.get("environment_external_url")),
        user=_text(_obj(body, "user").get("name")),
        changed_at=_text(body.get("status_changed_at")),
    )
    return Event(deployment, ((EventKind.DEPLOYMENT, deployment.status),))


def tail(trace: Any, lines: int = TRACE_LINES) -> str | None:
    """The last ``lines`` lines of a job trace, without terminal colour codes."""
    if not isinstance(trace, str) or not trace.strip():
        return None
    clean = _ANSI.sub("", trace).replace("\r\n", "\n")
    return "\n".join(clean.rstrip("\n").split("\n")[-lines:])


# -- payload helpers ------------------------------------------------------------------------


def _project(body: Body) -> dict[str, Any]:
    path = project_path(body)
    if path is None:
        raise Unreadable("the payload names no project (project.path_with_namespace)")
    project = _obj(body, "project")
    return {
        "project": path,
        "project_url": _text(project.get("web_url")),
        "default_branch": _text(project.get("default_branch")) or "",
    }


def _build(raw: Any, web_url: str | None) -> Job:
    build = raw if isinstance(raw, dict) else {}
    job_id = _int(build.get("id"), "builds[].id")
    return Job(
        id=job_id,
        name=_text(build.get("name")) or f"job {job_id}",
        stage=_text(build.get("stage")) or "",
        status=_text(build.get("status")) or "created",
        allow_failure=build.get("allow_failure") is True,
        failure_reason=_text(build.get("failure_reason")),
        duration=_number(build.get("duration")),
        url=_link(web_url, f"/-/jobs/{job_id}"),
    )


def _merge_request_ref(raw: Any) -> MergeRequestRef | None:
    if not isinstance(raw, dict) or raw.get("iid") is None:
        return None
    iid = _int(raw.get("iid"), "merge_request.iid")
    return MergeRequestRef(iid=iid, title=_text(raw.get("title")) or "", url=_text(raw.get("url")))


def _obj(body: Body, key: str) -> dict[str, Any]:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def _list(body: Body, key: str) -> list[Any]:
    value = body.get(key)
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value) if str(value) != "" else None


ID_RANGE = range(-(2**63), 2**63)  # what the store's BIGINT columns hold


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Unreadable(f"the payload has no usable {where}")
    try:
        number = int(value)
    except ValueError:
        raise Unreadable(f"the payload has no usable {where}") from None
    if number not in ID_RANGE:
        raise Unreadable(f"the payload's {where} is out of range")
    return number


def _optional_int(value: Any) -> int | None:
    try:
        return _int(value, "id")
    except Unreadable:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _first_line(value: Any) -> str | None:
    text = _text(value)
    return text.strip().splitlines()[0][:200] if text and text.strip() else None


def _link(web_url: str | None, path: str) -> str | None:
    return f"{web_url.rstrip('/')}{path}" if web_url else None
