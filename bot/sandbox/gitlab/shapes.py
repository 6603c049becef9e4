"""The JSON shapes GitLab's REST API v4 answers with, for the stand-in's projects and pipelines."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

from bot.sandbox.gitlab.state import MAINTAINER, Job, Pipeline, StandInProject

USER = {"id": 1, "username": "mlops-bot", "name": "mlops-bot", "state": "active", "locked": False}
ICONS = {"success": "passed", "failed": "failed", "canceled": "canceled", "skipped": "skipped"}


def stamp(at: datetime | None) -> str | None:
    """GitLab's timestamps: ISO 8601 in UTC with milliseconds, ``2016-08-11T11:28:34.085Z``."""
    return (
        None if at is None else at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    )


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


def user_json(web: str) -> dict[str, Any]:
    return {**USER, "avatar_url": None, "web_url": f"{web}/{USER['username']}"}


def project_json(project: StandInProject, web: str, level: int = 0) -> dict[str, Any]:
    """API_Entities_ProjectWithAccess; the CI/CD settings are there for Maintainers and up
    (``admin_project``), ``permissions`` for every member."""
    body = _project_json(project, web)
    body["permissions"] = {
        "project_access": {"access_level": level, "notification_level": 3} if level else None,
        "group_access": None,
    }
    if level >= MAINTAINER:
        body.update(
            ci_default_git_depth=20,
            ci_forward_deployment_enabled=True,
            ci_separated_caches=True,
            restrict_user_defined_variables=project.restrict_user_defined_variables,
            ci_pipeline_variables_minimum_override_role=(
                project.ci_pipeline_variables_minimum_override_role
            ),
            build_timeout=3600,
            auto_cancel_pending_pipelines="enabled",
        )
    return body


def _project_json(project: StandInProject, web: str) -> dict[str, Any]:
    namespace, _, name = project.path.rpartition("/")
    url = f"{web}/{project.path}"
    return {
        "id": project.id,
        "description": "",
        "name": name,
        "name_with_namespace": project.path.replace("/", " / "),
        "path": name,
        "path_with_namespace": project.path,
        "created_at": "2024-01-01T00:00:00.000Z",
        "default_branch": project.default_branch,
        "tag_list": [],
        "topics": [],
        "ssh_url_to_repo": f"git@{web.split('://')[-1]}:{project.path}.git",
        "http_url_to_repo": f"{url}.git",
        "web_url": url,
        "readme_url": None,
        "avatar_url": None,
        "forks_count": 0,
        "star_count": 0,
        "last_activity_at": "2024-01-01T00:00:00.000Z",
        "namespace": {
            "id": project.id,
            "name": namespace,
            "path": namespace.rsplit("/")[-1],
            "kind": "group",
            "full_path": namespace,
            "parent_id": None,
            "avatar_url": None,
            "web_url": f"{web}/groups/{namespace}",
        },
        "visibility": "private",
        "archived": False,
        "empty_repo": False,
        "jobs_enabled": True,
        "builds_access_level": "enabled",
        "ci_config_path": None,
        "_links": {"self": f"{web}/api/v4/projects/{project.id}"},
    }


def detailed_status(status: str, path: str) -> dict[str, Any]:
    text = ICONS.get(status, status)
    return {
        "icon": f"status_{status}",
        "text": text,
        "label": text,
        "group": status,
        "tooltip": text,
        "has_details": True,
        "details_path": path,
        "favicon": f"/assets/ci_favicons/favicon_status_{status}.png",
    }


def pipeline_basic(pipeline: Pipeline, web: str) -> dict[str, Any]:
    """The short pipeline shape that lists and job objects embed."""
    return {
        "id": pipeline.id,
        "iid": pipeline.iid,
        "project_id": pipeline.project.id,
        "sha": pipeline.sha,
        "ref": pipeline.ref,
        "status": pipeline.status,
        "source": pipeline.source,
        "created_at": stamp(pipeline.created_at),
        "updated_at": stamp(pipeline.updated_at),
        "web_url": f"{web}/{pipeline.project.path}/-/pipelines/{pipeline.id}",
    }


def pipeline_json(pipeline: Pipeline, web: str) -> dict[str, Any]:
    body = pipeline_basic(pipeline, web)
    path = f"/{pipeline.project.path}/-/pipelines/{pipeline.id}"
    body.update(
        name=None,
        before_sha="0" * 40,
        tag=pipeline.ref in pipeline.project.tags,
        yaml_errors=None,
        user=user_json(web),
        started_at=stamp(pipeline.started_at),
        finished_at=stamp(pipeline.finished_at),
        committed_at=None,
        duration=_whole(seconds(pipeline.started_at, pipeline.finished_at)),
        queued_duration=None,
        coverage=None,
        detailed_status=detailed_status(pipeline.status, path),
    )
    return body


def job_json(pipeline: Pipeline, job: Job, web: str) -> dict[str, Any]:
    project = pipeline.project
    body: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "stage": job.stage,
        "name": job.name,
        "ref": pipeline.ref,
        "tag": pipeline.ref in project.tags,
        "coverage": None,
        "allow_failure": False,
        "created_at": stamp(job.created_at),
        "started_at": stamp(job.started_at),
        "finished_at": stamp(job.finished_at),
        "erased_at": None,
        "duration": seconds(job.started_at, job.finished_at),
        "queued_duration": seconds(job.created_at, job.started_at),
        "user": user_json(web),
        "commit": commit_json(project, pipeline.sha, web),
        "pipeline": pipeline_basic(pipeline, web),
        "web_url": f"{web}/{project.path}/-/jobs/{job.id}",
        "project": {"ci_job_token_scope_enabled": False},
        "artifacts": [],
        "runner": None,
        "runner_manager": None,
        "artifacts_expire_at": None,
        "archived": False,
        "tag_list": [],
    }
    if job.status == "failed":
        body["failure_reason"] = "script_failure"
    if job.artifacts:
        size = sum(len(data) for data in job.artifacts.values())
        archive = {"file_type": "archive", "size": size, "filename": "artifacts.zip"}
        body["artifacts"] = [{**archive, "file_format": "zip"}]
        body["artifacts_file"] = {"filename": "artifacts.zip", "size": size}
    return body


def commit_json(project: StandInProject, sha: str, web: str) -> dict[str, Any]:
    when = "2024-01-01T00:00:00.000+00:00"
    return {
        "id": sha,
        "short_id": sha[:8],
        "title": f"Commit {sha[:8]}",
        "message": f"Commit {sha[:8]}\n",
        "author_name": "ML Engineer",
        "author_email": "ml@example.com",
        "authored_date": when,
        "committer_name": "ML Engineer",
        "committer_email": "ml@example.com",
        "committed_date": when,
        "created_at": when,
        "parent_ids": [],
        "trailers": {},
        "extended_trailers": {},
        "web_url": f"{web}/{project.path}/-/commit/{sha}",
    }


def branch_json(
    project: StandInProject, name: str, sha: str, protected: bool, web: str
) -> dict[str, Any]:
    """GET /projects/:id/repository/branches/:branch (API_Entities_Branch)."""
    return {
        "name": name,
        "commit": commit_json(project, sha, web),
        "merged": False,
        "protected": protected,
        "developers_can_push": False,
        "developers_can_merge": False,
        "can_push": True,
        "default": name == project.default_branch,
        "web_url": f"{web}/{project.path}/-/tree/{name}",
    }


def protected_branch_json(project: StandInProject, name: str) -> dict[str, Any]:
    """GET /projects/:id/protected_branches/:name: Maintainers push and merge, no force push."""
    level: dict[str, Any] = {
        "id": project.id * 100 + 1,
        "access_level": 40,
        "access_level_description": "Maintainers",
        "user_id": None,
        "group_id": None,
    }
    return {
        "id": project.id * 100 + len(name),
        "name": name,
        "push_access_levels": [level],
        "merge_access_levels": [{**level, "id": project.id * 100 + 2}],
        "unprotect_access_levels": [],
        "allow_force_push": False,
        "code_owner_approval_required": False,
    }


def variable_json(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": value, "variable_type": "env_var", "raw": False}


def file_json(path: str, data: bytes, ref: str, sha: str) -> dict[str, Any]:
    return {
        "file_name": path.rsplit("/")[-1],
        "file_path": path,
        "size": len(data),
        "encoding": "base64",
        "content": base64.b64encode(data).decode(),
        "content_sha256": hashlib.sha256(data).hexdigest(),
        "ref": ref,
        "blob_id": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        "commit_id": sha,
        "last_commit_id": sha,
        "execute_filemode": False,
    }


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value)
