"""GitLab webhook payloads with the shapes GitLab documents (Pipeline Hook, Job Hook), built
for any project and pipeline: the sandbox, the tests and the burst benchmark replay them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

WEB = "https://gitlab.example.com"
STAGES = ("build", "test", "evaluate")
JOBS: tuple[tuple[str, str], ...] = (
    ("build-image", "build"),
    ("unit", "test"),
    ("lint", "test"),
    ("train-smoke", "test"),
    ("evaluate", "evaluate"),
)
STAMP = "2025-05-12 09:41:07 UTC"


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: its ``X-Gitlab-Event`` header and JSON body."""

    event: str
    body: dict[str, Any]

    def payload(self) -> bytes:
        return json.dumps(self.body).encode()


def project_json(path: str, project_id: int = 42) -> dict[str, Any]:
    namespace, _, name = path.rpartition("/")
    return {
        "id": project_id,
        "name": name,
        "description": "",
        "web_url": f"{WEB}/{path}",
        "avatar_url": None,
        "git_ssh_url": f"git@gitlab.example.com:{path}.git",
        "git_http_url": f"{WEB}/{path}.git",
        "namespace": namespace,
        "visibility_level": 0,
        "path_with_namespace": path,
        "default_branch": "main",
        "ci_config_path": "",
    }


def user_json() -> dict[str, Any]:
    return {
        "id": 7,
        "name": "Alice Example",
        "username": "alice",
        "avatar_url": None,
        "email": "[REDACTED]",
    }


def build_json(job_id: int, name: str, stage: str, status: str) -> dict[str, Any]:
    finished = status in ("success", "failed", "canceled")
    return {
        "id": job_id,
        "stage": stage,
        "name": name,
        "status": status,
        "created_at": STAMP,
        "started_at": STAMP if status != "created" else None,
        "finished_at": STAMP if finished else None,
        "duration": 42.0 if finished else None,
        "queued_duration": 1.5,
        "failure_reason": "script_failure" if status == "failed" else None,
        "when": "on_success",
        "manual": False,
        "allow_failure": False,
        "user": user_json(),
        "runner": None,
        "artifacts_file": {"filename": None, "size": None},
        "environment": None,
    }


def pipeline_hook(
    project: str, pipeline_id: int, status: str, jobs: dict[int, tuple[str, str, str]]
) -> Delivery:
    """A Pipeline Hook; ``jobs`` maps job id to (name, stage, status)."""
    finished = status in ("success", "failed", "canceled")
    sha = f"{pipeline_id:040x}"[-40:]
    body = {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": pipeline_id,
            "iid": pipeline_id % 1000,
            "name": None,
            "ref": "main",
            "tag": False,
            "sha": sha,
            "before_sha": "0" * 40,
            "source": "push",
            "status": status,
            "detailed_status": status,
            "stages": list(STAGES),
            "created_at": STAMP,
            "finished_at": STAMP if finished else None,
            "duration": 183 if finished else None,
            "queued_duration": 2,
            "variables": [],
            "url": f"{WEB}/{project}/-/pipelines/{pipeline_id}",
        },
        "merge_request": None,
        "user": user_json(),
        "project": project_json(project),
        "commit": {
            "id": sha,
            "message": f"Tune the model (pipeline {pipeline_id})\n",
            "title": f"Tune the model (pipeline {pipeline_id})",
            "timestamp": "2025-05-12T11:40:51+02:00",
            "url": f"{WEB}/{project}/-/commit/{sha}",
            "author": {"name": "Alice Example", "email": "alice@example.com"},
        },
        "source_pipeline": None,
        "builds": [build_json(i, n, s, st) for i, (n, s, st) in sorted(jobs.items())],
    }
    return Delivery("Pipeline Hook", body)


def job_hook(
    project: str, pipeline_id: int, job_id: int, job: tuple[str, str, str], pipeline_status: str
) -> Delivery:
    """A Job Hook for one job; ``commit.status`` carries the pipeline's status."""
    name, stage, status = job
    sha = f"{pipeline_id:040x}"[-40:]
    build = build_json(job_id, name, stage, status)
    body = {
        "object_kind": "build",
        "ref": "main",
        "tag": False,
        "before_sha": "0" * 40,
        "sha": sha,
        "build_id": job_id,
        "build_name": name,
        "build_stage": stage,
        "build_status": status,
        "build_created_at": STAMP,
        "build_started_at": build["started_at"],
        "build_finished_at": build["finished_at"],
        "build_duration": build["duration"],
        "build_queued_duration": 1.5,
        "build_allow_failure": False,
        "build_failure_reason": build["failure_reason"] or "unknown_failure",
        "retries_count": 0,
        "pipeline_id": pipeline_id,
        "project_id": 42,
        "project_name": project,
        "user": user_json(),
        "commit": {
            "id": pipeline_id,
            "name": None,
            "sha": sha,
            "message": f"Tune the model (pipeline {pipeline_id})\n",
            "author_name": "Alice Example",
            "author_email": "alice@example.com",
            "status": pipeline_status,
            "duration": None,
            "started_at": STAMP,
            "finished_at": None,
        },
        "repository": {"name": project.rpartition("/")[2], "homepage": f"{WEB}/{project}"},
        "project": project_json(project),
        "runner": None,
        "environment": None,
    }
    return Delivery("Job Hook", body)


def pipeline_story(project: str, pipeline_id: int, *, fail: str | None = None) -> list[Delivery]:
    """Every delivery of one pipeline, in order: created, each job pending -> running -> done,
    the pipeline running, then finished (failed when the job named ``fail`` fails)."""
    ids = {pipeline_id * 10 + n: job for n, job in enumerate(JOBS)}
    state = {job_id: (name, stage, "created") for job_id, (name, stage) in ids.items()}
    story = [pipeline_hook(project, pipeline_id, "pending", dict(state))]
    for job_id, (name, stage) in ids.items():
        for status in ("pending", "running", "failed" if name == fail else "success"):
            state[job_id] = (name, stage, status)
            story.append(job_hook(project, pipeline_id, job_id, state[job_id], "running"))
        if job_id == min(ids):
            story.append(pipeline_hook(project, pipeline_id, "running", dict(state)))
    final = "failed" if fail else "success"
    story.append(pipeline_hook(project, pipeline_id, final, dict(state)))
    return story
