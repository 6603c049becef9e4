"""A local GitLab REST API v4: same paths, JSON shapes, status codes and error bodies.

``gitlab.Gitlab(url=stand_in.url, private_token=...)`` works against it unchanged. Pipelines
move only when a test calls ``advance()`` (or the sandbox turns on ``auto_advance()``);
``calls`` records every request and ``fail()`` makes GitLab misbehave.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from bot.sandbox.changes import Changes
from bot.sandbox.gitlab.api import GitLabApi, read_body
from bot.sandbox.gitlab.state import (
    ACTIVE,
    FINAL,
    MAINTAINER,
    VARIABLE_ROLES,
    CiState,
    JobPlan,
    Pipeline,
    StandInProject,
    force,
    now,
    step,
)

__all__ = ["GitLabStandIn", "JobPlan", "Pipeline", "RecordedCall", "StandInProject"]

Subscriber = Callable[[Pipeline], None]


@dataclass
class RecordedCall:
    """One request as it arrived: ``path`` is the raw path (``/api/v4/projects/ml%2Ffraud``)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    form: dict[str, str] | None
    status: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Failure:
    pattern: re.Pattern[str]
    status: int
    times: int
    retry_after: int | None
    delay: float


class GitLabStandIn:
    """An aiohttp server on 127.0.0.1 that plays GitLab's REST API for CI pipelines."""

    def __init__(
        self,
        *,
        token: str,
        projects: Iterable[StandInProject],
        read_only_tokens: Iterable[str] = (),
        access_level: int = MAINTAINER,
    ) -> None:
        """``access_level`` is the role of the tokens' user in every project (and of the
        trigger tokens' owner): 30 Developer, 40 Maintainer, 50 Owner."""
        self.state = CiState(projects)
        self.calls: list[RecordedCall] = []
        self.arrivals: list[tuple[str, str]] = []  # (method, raw path) as each request arrives
        self.api = GitLabApi(
            self.state,
            tokens=[token, *read_only_tokens],
            read_only_tokens=read_only_tokens,
            url=lambda: self.url,
            notify=self._notify,
            levels={t: access_level for t in (token, *read_only_tokens)},
        )
        self._failures: list[_Failure] = []
        self._subscribers: list[Subscriber] = []
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._changed = Changes()
        self._auto_interval: float | None = None
        self._auto_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self._port = self._runner.addresses[0][1]
        if self._auto_interval is not None:
            self.auto_advance(self._auto_interval)

    async def stop(self) -> None:
        self.auto_advance(None)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- control: what tests and the sandbox console use ------------------------------------

    def calls_to(self, method: str, path_regex: str) -> list[RecordedCall]:
        pattern = re.compile(path_regex)
        return [c for c in self.calls if c.method == method and pattern.search(c.path)]

    def arrived(self, method: str, path_regex: str) -> bool:
        """Whether such a request has arrived (``calls`` holds it only once answered)."""
        pattern = re.compile(path_regex)
        return any(m == method and pattern.search(p) for m, p in self.arrivals)

    def fail(
        self,
        path_regex: str,
        *,
        status: int = 502,
        times: int = 1,
        retry_after: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests whose raw path matches with ``status``, after
        ``delay`` seconds (a delay longer than the client's timeout plays a hung GitLab)."""
        pattern = re.compile(path_regex)
        self._failures.append(_Failure(pattern, status, times, retry_after, delay))

    def add_project(self, project: StandInProject) -> StandInProject:
        return self.state.add_project(project)

    def pipelines(self, project: str | None = None) -> list[Pipeline]:
        if project is None:
            return list(self.state.pipelines)
        found = self.state.project(project)
        return [p for p in self.state.pipelines if p.project is found]

    def pipeline(self, project: str, pipeline_id: int) -> Pipeline:
        return self.state.pipeline(self.state.project(project), pipeline_id)

    def advance(self, project: str, pipeline_id: int, *, to: str | None = None) -> None:
        """One runner move (start the next pending job, or finish the running one and
        enqueue the next stage), or straight to ``success``, ``failed`` or ``canceled``."""
        pipeline = self.pipeline(project, pipeline_id)
        if to is None:
            step(pipeline)
        else:
            force(pipeline, to)
        self._notify(pipeline)

    def complete(self, project: str, pipeline_id: int) -> str:
        """Move the pipeline until it finishes, honouring ``fail_job``; its final status."""
        pipeline = self.pipeline(project, pipeline_id)
        while pipeline.status not in FINAL:
            step(pipeline)
        self._notify(pipeline)
        return pipeline.status

    def fail_job(self, project: str, pipeline_id: int, job_name: str, trace: str) -> None:
        """The job will fail with this trace when it finishes (``advance`` or ``complete``)."""
        job = self.pipeline(project, pipeline_id).job(job_name)
        job.fails, job.trace = True, trace

    def set_trace(self, project: str, pipeline_id: int, job_name: str, trace: str | bytes) -> None:
        self.pipeline(project, pipeline_id).job(job_name).trace = trace

    def restrict_variables(self, project: str, role: str, *, restrict: bool = True) -> None:
        """Set the project's ``ci_pipeline_variables_minimum_override_role`` (no_one_allowed,
        owner, maintainer, developer) and ``restrict_user_defined_variables``."""
        if role not in VARIABLE_ROLES:
            raise ValueError(f"role must be one of {', '.join(VARIABLE_ROLES)}, got {role!r}")
        found = self.state.project(project)
        found.ci_pipeline_variables_minimum_override_role = role
        found.restrict_user_defined_variables = restrict

    def set_access_level(self, level: int) -> None:
        """The role of the stand-in's tokens' user (and trigger owner) in every project."""
        self.api.levels = dict.fromkeys(self.api.levels, level)
        self.api.trigger_owner_level = level

    def attach_artifact(
        self, project: str, pipeline_id: int, job_name: str, path: str, data: bytes
    ) -> None:
        self.pipeline(project, pipeline_id).job(job_name).artifacts[path] = data

    def set_file(self, project: str, path: str, data: bytes, *, at: str | None = None) -> None:
        """``path`` at every commit, or only at commit (or branch) ``at``."""
        found = self.state.project(project)
        if at is None:
            found.files[path] = data
            return
        sha = found.resolve(at) or at
        found.commit_files.setdefault(sha, {})[path] = data

    def add_branch(self, project: str, name: str, sha: str) -> None:
        self.state.project(project).branches[name] = sha

    def protect(self, project: str, *names: str) -> None:
        """Exactly these protected-branch rules (none: nothing is protected)."""
        self.state.project(project).protected = list(names)

    def auto_advance(self, interval: float | None) -> None:
        """Every ``interval`` seconds, move each active pipeline one step; a running job
        finishes once its plan's ``duration_s`` has passed. None turns it off."""
        if self._auto_task is not None:
            self._auto_task.cancel()
            self._auto_task = None
        self._auto_interval = interval
        if interval is not None and self._runner is not None:
            self._auto_task = asyncio.get_running_loop().create_task(self._auto(interval))

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback(pipeline)`` after every change to a pipeline."""
        self._subscribers.append(callback)

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - part of the control API tests call
    ) -> None:
        """Wait until ``predicate`` holds, re-checking after every change."""
        await self._changed.wait_for(predicate, timeout)

    async def _auto(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for pipeline in self.state.pipelines:
                if pipeline.status in ACTIVE and _due(pipeline):
                    step(pipeline)
                    self._notify(pipeline)

    def _notify(self, pipeline: Pipeline) -> None:
        self._changed.signal()
        for callback in self._subscribers:
            callback(pipeline)

    # -- HTTP plumbing ---------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.raw_path.split("?", 1)[0]
        self.arrivals.append((request.method, path))
        self._changed.signal()
        json_body, form = await read_body(request)
        response = await self._respond(request, path, json_body, form)
        query = dict(request.query)
        self.calls.append(
            RecordedCall(request.method, path, query, json_body, form, response.status)
        )
        self._changed.signal()
        return response

    async def _respond(
        self, request: web.Request, path: str, json_body: Any, form: dict[str, str] | None
    ) -> web.Response:
        """An injected failure first (as a proxy in front of GitLab would answer), else the API."""
        failure = self._take_failure(path)
        if failure is not None:
            await asyncio.sleep(failure.delay)
            return _failure_response(failure)
        return self.api.handle(request, path, json_body, form)

    def _take_failure(self, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.pattern.search(path):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None


def _due(pipeline: Pipeline) -> bool:
    """Auto-advance waits for a running job's planned duration before finishing it."""
    running = next((j for j in pipeline.current() if j.status == "running"), None)
    if running is None or running.started_at is None:
        return True
    elapsed = (now() - running.started_at).total_seconds()
    return elapsed >= running.plan.duration_s


def _failure_response(failure: _Failure) -> web.Response:
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
    if failure.status == 429:
        return web.Response(status=429, text="Retry later\n", headers=headers)
    if failure.status >= 502:
        html = f"<html><body><h1>{failure.status}</h1>GitLab is not responding</body></html>"
        return web.Response(status=failure.status, text=html, content_type="text/html")
    message = {"message": f"{failure.status} {_reason(failure.status)}"}
    return web.json_response(message, status=failure.status, headers=headers)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
