"""GitLab CI through python-gitlab: made async once here, with bounded retries and timeouts.

python-gitlab's own transient-error retries are off on every call (``retry_transient_errors``
False, ``max_retries`` small, which bounds its 429 Retry-After loop); tenacity retries 5xx and
connection errors instead. Creating a pipeline is not idempotent, so it is retried only when
GitLab cannot have started it (no connection, 502/503).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import gitlab
import requests
import structlog
from gitlab.exceptions import GitlabAuthenticationError, GitlabError
from gitlab.v4.objects import Project, ProjectPipeline
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from bot.config.checks import (
    VARIABLES_SETTING,
    VARIABLES_WHERE,
    VariablesPolicy,
    pipeline_variables_issue,
)
from bot.errors import BotError, Conflict, ExternalError, NotFound, UserInputError
from bot.ports import BranchHead, PipelineJob, PipelineStatus
from integrations.gitlab_trace import TailBuffer, tail

__all__ = ["GitLabPipelines", "tail", "transient"]

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
DEFAULT_WAIT = wait_exponential(multiplier=0.5, max=4) + wait_random(0, 0.5)
"""0.5 s, 1 s, 2 s ... (at most 4 s) between attempts, plus up to 0.5 s of jitter."""
TRANSIENT = frozenset({500, 502, 503, 504, *range(520, 531)})
NOT_STARTED = frozenset({502, 503})
"""Statuses after which GitLab cannot have created the pipeline: safe to send it again."""

_FAILURES = (GitlabError, requests.RequestException)
"""What a python-gitlab call raises when GitLab fails; anything else is a bug and propagates."""
VARIABLES_REFUSED = "Insufficient permissions to set pipeline variables"
"""GitLab's 400 when the caller may not set pipeline variables in the project."""
TRACE_CHUNK = 64 * 1024
LIST_PAGE = 100
_log = structlog.get_logger(__name__)


class GitLabPipelines:
    """``bot.ports.Pipelines`` on python-gitlab; a trigger token per project is optional."""

    def __init__(
        self,
        client: gitlab.Gitlab,
        *,
        trigger_tokens: Mapping[str, str] | None = None,
        attempts: int = 3,
        wait: wait_base | None = None,
        rate_limit_retries: int = 2,
    ) -> None:
        self._gl = client
        self._triggers = dict(trigger_tokens or {})
        self._attempts = attempts
        self._wait = wait if wait is not None else DEFAULT_WAIT
        timeout = client.timeout if client.timeout is not None else DEFAULT_TIMEOUT
        self._opts: dict[str, Any] = {
            "retry_transient_errors": False,
            "max_retries": rate_limit_retries,
            "timeout": timeout,
        }
        self._projects: dict[str, Project] = {}
        known = (client.private_token, client.oauth_token, client.job_token)
        self._secrets = sorted({s for s in (*known, *self._triggers.values()) if s}, key=len)

    @classmethod
    def from_settings(
        cls,
        url: str,
        token: str | None,
        timeout: float,
        trigger_tokens: Mapping[str, str] | None = None,
        **options: Any,
    ) -> GitLabPipelines:
        client = gitlab.Gitlab(
            url=url, private_token=token, timeout=timeout, retry_transient_errors=False
        )
        return cls(client, trigger_tokens=trigger_tokens, **options)

    # -- the port --------------------------------------------------------------------------

    async def create(self, project: str, ref: str, variables: Mapping[str, str]) -> PipelineStatus:
        """Via the project's trigger token when one is configured, else the API token."""
        proj = await self._project(project)
        token = self._triggers.get(project)
        what = f"starting a pipeline for {project} at {ref!r}"
        try:
            if token is not None:
                pipeline = await self._call(
                    lambda: proj.trigger_pipeline(
                        ref, token, variables=dict(variables), **self._opts
                    ),
                    idempotent=False,
                )
            else:
                data = {
                    "ref": ref,
                    "variables": [{"key": k, "value": v} for k, v in variables.items()],
                }
                pipeline = await self._call(
                    lambda: proj.pipelines.create(data, **self._opts), idempotent=False
                )
        except _FAILURES as err:
            if _code(err) == 400 and VARIABLES_REFUSED in _message(err):
                raise await self._variables_refused(project, trigger=token is not None) from err
            raise self._error(err, what, project=project, trigger=token is not None) from err
        return _status(pipeline, ())

    async def _variables_refused(self, project: str, *, trigger: bool) -> Conflict:
        """GitLab's refusal of the run's variables, told as the setting to change."""
        try:
            policy = await self.variables_policy(project)
        except BotError:
            policy = VariablesPolicy(None, None, None)
        issue = pipeline_variables_issue(project, policy, trigger=trigger)
        user = "the trigger token's owner" if trigger else "the bot's token user"
        return Conflict(
            "GitLab refused to start the pipeline: "
            + (
                issue
                or f"{project}'s {VARIABLES_SETTING} ({VARIABLES_WHERE}) is no_one_allowed "
                f"or above the role of {user}, and /train sends MLOPS_* and HP_* variables. "
                "A project Owner can set it to that user's role (developer or maintainer), or "
                "give the user the role it names; `mlops-bot check-config` shows the setting "
                "when the bot's token has the Maintainer role"
            )
            + "."
        )

    async def variables_policy(self, project: str) -> VariablesPolicy:
        """The project's pipeline-variable settings and the token user's role, read fresh
        (``GET /projects/:id``: the settings only reach Maintainers and up)."""
        if not self._authenticated:
            return VariablesPolicy(None, None, None)
        try:
            proj = await self._call(lambda: self._gl.projects.get(project, **self._opts))
        except _FAILURES as err:
            missing = f"GitLab project {project} not found (or the bot's token cannot see it)"
            raise self._error(
                err, f"reading {project}", project=project, not_found=missing
            ) from err
        self._projects[project] = proj
        return _policy(proj.attributes)

    async def find(
        self, project: str, ref: str, variables: Mapping[str, str], since: datetime
    ) -> PipelineStatus | None:
        """The newest pipeline for ``ref`` updated after ``since`` whose variables include all of
        ``variables`` (a run's MLOPS_* and HP_*), with its jobs: one list request, one variables
        request per candidate, one jobs read for the match (it may have finished already, and
        its results are read from a job). Only an API token can look; a trigger token alone
        cannot."""
        if not self._authenticated:
            raise Conflict(
                f"the bot cannot tell whether GitLab started a pipeline for {project}: looking "
                "pipelines up needs an API token (gitlab.token), and only a trigger token is set"
            )
        proj = await self._project(project)
        after = _stamp(since)
        what = f"looking up pipelines of {project} at {ref!r}"
        wanted = dict(variables)
        try:
            listed = await self._call(
                lambda: proj.pipelines.list(
                    ref=ref,
                    updated_after=after,
                    order_by="id",
                    sort="desc",
                    per_page=100,
                    get_all=False,
                    **self._opts,
                )
            )
            match = None
            for pipeline in listed:
                given = await self._variables(pipeline)
                if all(given.get(k) == v for k, v in wanted.items()):
                    match = pipeline
                    break
        except _FAILURES as err:
            raise self._error(err, what, project=project) from err
        if match is None:
            return None
        return _status(match, await self.jobs(project, int(match.attributes["id"])))

    async def _variables(self, pipeline: ProjectPipeline) -> dict[str, str]:
        found = await self._call(lambda: pipeline.variables.list(get_all=True, **self._opts))
        return {str(v.key): str(v.value) for v in found}

    async def status(self, project: str, pipeline_id: int) -> PipelineStatus:
        """The pipeline and its jobs (retried ones left out), in stage order."""
        proj = await self._project(project)
        what = f"reading pipeline {pipeline_id} of {project}"
        try:
            pipeline = await self._call(lambda: proj.pipelines.get(pipeline_id, **self._opts))
        except _FAILURES as err:
            missing = f"GitLab pipeline {pipeline_id} not found in {project}"
            raise self._error(err, what, project=project, not_found=missing) from err
        return _status(pipeline, await self.jobs(project, pipeline_id))

    async def jobs(self, project: str, pipeline_id: int) -> tuple[PipelineJob, ...]:
        """``GET /projects/:id/pipelines/:pipeline_id/jobs``, all pages, in stage order."""
        proj = await self._project(project)
        pipeline = proj.pipelines.get(pipeline_id, lazy=True)
        try:
            jobs = await self._call(lambda: pipeline.jobs.list(get_all=True, **self._opts))
        except _FAILURES as err:
            what = f"reading the jobs of pipeline {pipeline_id} of {project}"
            missing = f"GitLab pipeline {pipeline_id} not found in {project}"
            raise self._error(err, what, project=project, not_found=missing) from err
        ordered = sorted((j.attributes for j in jobs), key=lambda a: int(a["id"]))
        return tuple(_job(a) for a in ordered)

    async def updated(
        self, project: str, after: datetime | None, limit: int
    ) -> list[PipelineStatus]:
        """``GET /projects/:id/pipelines?updated_after=&order_by=updated_at&sort=asc``, page
        by page until ``limit`` pipelines or the last page: one request per 100 pipelines."""
        proj = await self._project(project)
        filters: dict[str, Any] = {"order_by": "updated_at", "sort": "asc"}
        if after is not None:
            filters["updated_after"] = _stamp(after)
        found: list[PipelineStatus] = []
        page, per_page = 1, min(max(limit, 1), LIST_PAGE)
        try:
            while len(found) < limit:
                options = {**filters, **self._opts, "page": page, "per_page": per_page}
                listed = await self._call(
                    functools.partial(proj.pipelines.list, get_all=False, **options)
                )
                known = {s.id for s in found}
                found += [s for s in (_status(p, ()) for p in listed) if s.id not in known]
                if len(listed) < per_page:
                    break
                page += 1
        except _FAILURES as err:
            raise self._error(err, f"listing pipelines of {project}", project=project) from err
        return found[:limit]

    async def cancel(self, project: str, pipeline_id: int) -> None:
        proj = await self._project(project)
        pipeline = proj.pipelines.get(pipeline_id, lazy=True)
        try:
            await self._call(lambda: pipeline.cancel(**self._opts))
        except _FAILURES as err:
            what = f"canceling pipeline {pipeline_id} of {project}"
            missing = f"GitLab pipeline {pipeline_id} not found in {project}"
            raise self._error(err, what, project=project, not_found=missing) from err

    async def job_log_tail(self, project: str, job_id: int, lines: int = 30) -> str:
        """The last ``lines`` lines of the job's log as a terminal would show them (no colour
        codes, carriage-return progress collapsed)."""
        proj = await self._project(project)
        job = proj.jobs.get(job_id, lazy=True)

        def read() -> TailBuffer:  # a retry starts over with an empty buffer
            kept = TailBuffer(lines)
            job.trace(streamed=True, action=kept.feed, chunk_size=TRACE_CHUNK, **self._opts)
            return kept

        try:
            kept = await self._call(read)
        except _FAILURES as err:
            what = f"reading the log of job {job_id} of {project}"
            missing = f"GitLab job {job_id} not found in {project}"
            raise self._error(err, what, project=project, not_found=missing) from err
        return tail(kept.text(), lines)

    async def job_artifact(self, project: str, job_id: int, path: str) -> bytes | None:
        """One file from the job's artifacts; None when the job or the file is not there."""
        proj = await self._project(project)
        job = proj.jobs.get(job_id, lazy=True)
        try:
            return await self._call(lambda: job.artifact(path, **self._opts))
        except _FAILURES as err:
            if _code(err) == 404:
                return None
            what = f"reading {path} of job {job_id} of {project}"
            raise self._error(err, what, project=project) from err

    async def read_file(self, project: str, path: str, ref: str) -> bytes | None:
        """A file of the repository at ``ref`` (repository files API); None when absent."""
        proj = await self._project(project)
        try:
            data = await self._call(lambda: proj.files.raw(file_path=path, ref=ref, **self._opts))
        except _FAILURES as err:
            if _code(err) == 404:
                return None
            what = f"reading {path} of {project} at {ref}"
            raise self._error(err, what, project=project) from err
        return bytes(data)

    async def commit_of(self, project: str, ref: str) -> str | None:
        """``GET /projects/:id/repository/commits/:ref``: the commit a ref names; None if none."""
        proj = await self._project(project)
        try:
            commit = await self._call(lambda: proj.commits.get(ref, **self._opts))
        except _FAILURES as err:
            if _code(err) == 404:
                return None
            raise self._error(err, f"resolving {ref} of {project}", project=project) from err
        return str(commit.id)

    async def branch(self, project: str, name: str | None = None) -> BranchHead:
        """The branch ``name`` (None: the project's default branch) with its newest commit and
        whether GitLab protects it (``GET /projects/:id/repository/branches/:branch``)."""
        if not self._authenticated:
            raise ExternalError(
                f"reading {project}'s branches needs a GitLab API token (gitlab.token); "
                "a trigger token cannot read the repository"
            )
        proj = await self._project(project)
        if name is None:
            default = proj.attributes.get("default_branch")
            if not default:
                raise NotFound(f"GitLab project {project} has no default branch (empty repository)")
            name = str(default)
        chosen = name
        try:
            found = await self._call(lambda: proj.branches.get(chosen, **self._opts))
        except _FAILURES as err:
            missing = f"GitLab project {project} has no branch {chosen}"
            what = f"reading branch {chosen} of {project}"
            raise self._error(err, what, project=project, not_found=missing) from err
        a = found.attributes
        return BranchHead(
            name=str(a["name"]),
            sha=str(a["commit"]["id"]),
            protected=bool(a.get("protected")),
            default=bool(a.get("default")),
        )

    # -- plumbing --------------------------------------------------------------------------

    async def _project(self, path: str) -> Project:
        """The project, looked up once; without an API token (triggers only) it is not read."""
        cached = self._projects.get(path)
        if cached is not None:
            return cached
        if not self._authenticated:
            return self._gl.projects.get(path, lazy=True)
        try:
            project = await self._call(lambda: self._gl.projects.get(path, **self._opts))
        except _FAILURES as err:
            missing = f"GitLab project {path} not found (or the bot's token cannot see it)"
            raise self._error(err, f"looking up {path}", project=path, not_found=missing) from err
        self._projects[path] = project
        return project

    @property
    def _authenticated(self) -> bool:
        return any((self._gl.private_token, self._gl.oauth_token, self._gl.job_token))

    async def _call(self, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run one blocking python-gitlab call in a thread, retrying transient failures."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: transient(e, idempotent=idempotent)),
            before_sleep=_log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await asyncio.to_thread(fn)
        raise AssertionError("tenacity stopped without an outcome")  # pragma: no cover

    def _error(
        self,
        err: Exception,
        what: str,
        *,
        project: str,
        not_found: str | None = None,
        trigger: bool = False,
    ) -> BotError:
        """The bot's error for a failed call; never carries a token."""
        error = _translate(err, what, project=project, not_found=not_found, trigger=trigger)
        return type(error)(self._scrub(str(error)))

    def _scrub(self, text: str) -> str:
        for secret in reversed(self._secrets):
            text = text.replace(secret, "[redacted]")
        return text


def transient(err: BaseException, *, idempotent: bool = True) -> bool:
    """Worth another try: 5xx and connection trouble; for a create, only what cannot have
    reached GitLab (connection refused, connect timeout, 502/503)."""
    if isinstance(err, GitlabError):
        codes = TRANSIENT if idempotent else NOT_STARTED
        return err.response_code in codes
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(err, requests.exceptions.Timeout | requests.exceptions.ChunkedEncodingError):
        return idempotent
    if isinstance(err, requests.exceptions.ConnectionError):
        return idempotent or _refused(err)
    return False


def _translate(
    err: Exception, what: str, *, project: str, not_found: str | None, trigger: bool
) -> BotError:
    code = _code(err)
    if isinstance(err, GitlabAuthenticationError) or code == 401:
        return ExternalError(f"GitLab refused the token (401 Unauthorized) while {what}")
    if code == 403:
        return ExternalError(
            f"GitLab refused the token (403 Forbidden) while {what}: "
            "it needs the api scope and at least Developer access to the project"
        )
    if code == 404 and trigger:
        return ExternalError(f"GitLab refused the trigger token for {project} (404 Not Found)")
    if code == 404 and not_found is not None:
        return NotFound(not_found)
    if code == 400:
        return UserInputError(f"GitLab refused {what}: {_message(err)}")
    if isinstance(err, requests.RequestException):
        return ExternalError(f"GitLab did not answer while {what} ({type(err).__name__})")
    if code is None:
        return ExternalError(f"GitLab's answer made no sense while {what}")
    detail = _without(code, _message(err))
    return ExternalError(f"GitLab failed while {what}: HTTP {code} {detail}".rstrip())


def _without(code: int, message: str) -> str:
    """GitLab's own text for a status (``500 Internal Server Error``) without the code the
    error already names."""
    head, _, rest = message.partition(" ")
    return rest.strip() if head == str(code) else message


def _code(err: BaseException) -> int | None:
    return err.response_code if isinstance(err, GitlabError) else None


def _message(err: Exception) -> str:
    """GitLab's error text: ``{"message": {"base": ["Reference not found"]}}`` -> the list."""
    raw = err.error_message if isinstance(err, GitlabError) else str(err)
    if isinstance(raw, dict):
        parts = [
            " ".join(str(v) for v in (value if isinstance(value, list) else [value]))
            if key == "base"
            else f"{key} {value}"
            for key, value in raw.items()
        ]
        return "; ".join(parts)
    text = str(raw)
    return "" if text.lstrip().startswith("<") else text[:200]


def _refused(err: requests.exceptions.ConnectionError) -> bool:
    """True when the connection was never made, so nothing reached GitLab."""
    reason = getattr(err.args[0], "reason", None) if err.args else None
    return type(reason).__name__ in ("NewConnectionError", "NameResolutionError")


def _status(pipeline: ProjectPipeline, jobs: tuple[PipelineJob, ...]) -> PipelineStatus:
    a = pipeline.attributes
    return PipelineStatus(
        id=int(a["id"]),
        status=str(a["status"]),
        ref=str(a["ref"]),
        sha=str(a["sha"]),
        web_url=str(a["web_url"]),
        jobs=jobs,
        updated_at=_when(a.get("updated_at")),
    )


def _stamp(at: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as GitLab writes its own timestamps."""
    utc = at.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _when(raw: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if raw else None
    except ValueError:
        return None


def _job(a: Mapping[str, Any]) -> PipelineJob:
    return PipelineJob(
        id=int(a["id"]),
        name=str(a["name"]),
        stage=str(a["stage"]),
        status=str(a["status"]),
        web_url=a.get("web_url"),
    )


def _policy(a: Mapping[str, Any]) -> VariablesPolicy:
    """From a project's JSON: the settings (absent below Maintainer) and the token's role,
    the higher of its project and group access."""
    access = a.get("permissions") or {}
    levels = [
        int(grant.get("access_level") or 0)
        for grant in (access.get("project_access"), access.get("group_access"))
        if isinstance(grant, dict)
    ]
    readable = "restrict_user_defined_variables" in a
    level = max(levels, default=0) or (40 if readable else None)  # reading it takes Maintainer
    return VariablesPolicy(
        restricted=bool(a["restrict_user_defined_variables"]) if readable else None,
        minimum_role=a.get("ci_pipeline_variables_minimum_override_role"),
        access_level=level,
    )


def _log_retry(state: RetryCallState) -> None:
    err = state.outcome.exception() if state.outcome is not None else None
    _log.warning(
        "gitlab.retry",
        attempt=state.attempt_number,
        error=type(err).__name__,
        status=_code(err) if err is not None else None,
    )
