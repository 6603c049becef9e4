"""The GitLab stand-in's REST API v4 endpoints: routing on the raw path, auth, JSON bodies."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from aiohttp import web

from bot.sandbox.gitlab import filters as pipeline_filters
from bot.sandbox.gitlab import shapes
from bot.sandbox.gitlab.state import (
    DEVELOPER,
    MAINTAINER,
    ApiError,
    CiState,
    Pipeline,
    StandInProject,
    cancel,
    not_found,
)

TRACE_CHUNK = 64 * 1024
VARIABLES_REFUSED = "Insufficient permissions to set pipeline variables"
"""Gitlab::Ci::Pipeline::Chain::Build::Associations' error when the caller's role is below the
project's ``ci_pipeline_variables_minimum_override_role`` (or it is ``no_one_allowed``)."""


@dataclass
class _Request:
    method: str
    params: dict[str, str]
    args: dict[str, Any]
    query: dict[str, str]
    scope: set[str]
    path: str
    token: str | None


Handler = Callable[[_Request], web.Response]
PROJECT = r"/api/v4/projects/(?P<project>[^/]+)"
PIPELINE = PROJECT + r"/pipelines/(?P<pipeline>\d+)"
JOB = PROJECT + r"/jobs/(?P<job>\d+)"


class GitLabApi:
    """Answers one request against ``state``; ``notify`` hears of every pipeline it changes."""

    def __init__(
        self,
        state: CiState,
        *,
        tokens: Iterable[str],
        read_only_tokens: Iterable[str],
        url: Callable[[], str],
        notify: Callable[[Pipeline], None],
        levels: Mapping[str, int] | None = None,
    ) -> None:
        self.state = state
        self._tokens = list(tokens)
        self.levels = {t: MAINTAINER for t in self._tokens} | dict(levels or {})
        """Each token's user's access level in every project (Maintainer unless set)."""
        self.trigger_owner_level = self.levels[self._tokens[0]] if self._tokens else MAINTAINER
        """The access level of the user who owns the projects' trigger tokens."""
        self._read_only = list(read_only_tokens)
        self._url = url
        self._notify = notify
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            (method, re.compile(pattern + "$"), handler)
            for method, pattern, handler in [
                ("GET", PROJECT, self._get_project),
                ("GET", PROJECT + "/pipelines", self._list_pipelines),
                ("POST", PROJECT + "/pipeline", self._create_pipeline),
                ("POST", PROJECT + "/trigger/pipeline", self._trigger_pipeline),
                ("GET", PIPELINE, self._get_pipeline),
                ("GET", PIPELINE + "/jobs", self._pipeline_jobs),
                ("GET", PIPELINE + "/variables", self._pipeline_variables),
                ("POST", PIPELINE + "/cancel", self._cancel_pipeline),
                ("POST", PIPELINE + "/retry", self._retry_pipeline),
                ("GET", JOB, self._get_job),
                ("GET", JOB + "/trace", self._job_trace),
                ("GET", JOB + "/artifacts/(?P<artifact>.+)", self._job_artifact),
                ("GET", PROJECT + "/repository/files/(?P<file>[^/]+)/raw", self._file_raw),
                ("GET", PROJECT + "/repository/files/(?P<file>[^/]+)", self._file),
                ("GET", PROJECT + "/repository/commits/(?P<sha>[^/]+)", self._commit),
                ("GET", PROJECT + "/repository/branches/(?P<branch>[^/]+)", self._branch),
                ("GET", PROJECT + "/protected_branches/(?P<name>[^/]+)", self._protected_branch),
            ]
        ]

    def handle(self, request: web.Request, path: str, json_body: Any, form: Any) -> web.Response:
        try:
            token = self._authenticate(request)
            handler, params = self._route(request.method, path)
            args: dict[str, Any] = {**request.query, **(form or {})}
            if isinstance(json_body, dict):
                args.update(json_body)
            query = request.query
            scope = {*query.getall("scope", ()), *query.getall("scope[]", ())}
            req = _Request(request.method, params, args, dict(query), scope, path, token)
            return handler(req)
        except ApiError as err:
            return web.json_response(err.body, status=err.status)

    def _authenticate(self, request: web.Request) -> str | None:
        """The caller's token; an unknown one is 401, none at all is an anonymous caller."""
        headers = request.headers
        token = headers.get("PRIVATE-TOKEN") or headers.get("JOB-TOKEN") or _bearer(request)
        if token is None:
            return None
        if not any(_same(token, known) for known in self._tokens):
            raise ApiError(401, "401 Unauthorized")
        return token

    def _route(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match and route_method == method:
                return handler, {k: unquote(v) for k, v in match.groupdict().items()}
        raise ApiError(404, "404 Not Found", key="error")

    def _project(self, req: _Request, *, write: bool = False) -> StandInProject:
        """Projects are private: an anonymous caller is told they do not exist."""
        if req.token is None:
            raise not_found("Project")
        project = self.state.project(req.params["project"])
        if write and req.token in self._read_only:
            err = ApiError(403, "insufficient_scope", key="error")
            err.body.update(
                error_description="The request requires higher privileges than provided by "
                "the access token.",
                scope="api",
            )
            raise err
        return project

    def _pipeline(self, req: _Request, *, write: bool = False) -> Pipeline:
        project = self._project(req, write=write)
        return self.state.pipeline(project, int(req.params["pipeline"]))

    # -- endpoints -------------------------------------------------------------------------

    def _get_project(self, req: _Request) -> web.Response:
        """GET /projects/:id (ProjectWithAccess): CI/CD settings only for Maintainers and up."""
        level = self.levels.get(req.token or "", 0)
        body = shapes.project_json(self._project(req), self._url(), level)
        return web.json_response(body)

    def _create_pipeline(self, req: _Request) -> web.Response:
        project = self._project(req, write=True)
        level = self.levels.get(req.token or "", 0)
        if level < DEVELOPER:  # authorize! :create_pipeline
            raise ApiError(403, "403 Forbidden")
        variables = _variable_list(req.args.get("variables"))
        _check_variables(project, variables, level)
        pipeline = self.state.create(
            project, _ref(req.args), source="api", variables=variables, inputs=_inputs(req.args)
        )
        return self._created(pipeline)

    def _trigger_pipeline(self, req: _Request) -> web.Response:
        """Authenticated by the trigger token in the body; a wrong one is a bare 404."""
        project = self.state.project(req.params["project"])
        token = str(req.args.get("token") or "")
        if not any(_same(token, t) for t in project.trigger_tokens):
            raise not_found()
        variables = _variable_map(req.args)
        _check_variables(project, variables, self.trigger_owner_level)
        pipeline = self.state.create(
            project, _ref(req.args), source="trigger", variables=variables, inputs=_inputs(req.args)
        )
        return self._created(pipeline)

    def _created(self, pipeline: Pipeline) -> web.Response:
        self._notify(pipeline)
        return web.json_response(shapes.pipeline_json(pipeline, self._url()), status=201)

    def _list_pipelines(self, req: _Request) -> web.Response:
        """GET /projects/:id/pipelines: filtered, newest first by default, paginated."""
        project = self._project(req)
        chosen = [p for p in self.state.pipelines if p.project is project]
        chosen = [p for p in chosen if pipeline_filters.matches(p, req.args)]
        chosen = pipeline_filters.ordered(chosen, req.args)
        return self._page(req, [shapes.pipeline_basic(p, self._url()) for p in chosen])

    def _get_pipeline(self, req: _Request) -> web.Response:
        return web.json_response(shapes.pipeline_json(self._pipeline(req), self._url()))

    def _pipeline_jobs(self, req: _Request) -> web.Response:
        """Newest job first, as GitLab's JobsFinder orders them; paginated."""
        pipeline = self._pipeline(req)
        jobs = pipeline.jobs if _flag(req.args.get("include_retried")) else pipeline.current()
        chosen = [
            j for j in sorted(jobs, key=lambda j: -j.id) if j.status in (req.scope or {j.status})
        ]
        return self._page(req, [shapes.job_json(pipeline, j, self._url()) for j in chosen])

    def _pipeline_variables(self, req: _Request) -> web.Response:
        variables = self._pipeline(req).variables
        return web.json_response([shapes.variable_json(k, v) for k, v in variables.items()])

    def _cancel_pipeline(self, req: _Request) -> web.Response:
        pipeline = self._pipeline(req, write=True)
        cancel(pipeline)
        self._notify(pipeline)
        return web.json_response(shapes.pipeline_json(pipeline, self._url()))

    def _retry_pipeline(self, req: _Request) -> web.Response:
        pipeline = self._pipeline(req, write=True)
        self.state.retry(pipeline)
        return self._created(pipeline)

    def _get_job(self, req: _Request) -> web.Response:
        pipeline, job = self.state.job(self._project(req), int(req.params["job"]))
        return web.json_response(shapes.job_json(pipeline, job, self._url()))

    def _job_trace(self, req: _Request) -> web.Response:
        """The whole trace as text/plain, sent in chunks (a trace can be tens of MB)."""
        _, job = self.state.job(self._project(req), int(req.params["job"]))
        log = job.log()
        data = log.encode() if isinstance(log, str) else log
        return web.Response(body=_chunks(data), content_type="text/plain", charset="utf-8")

    def _job_artifact(self, req: _Request) -> web.Response:
        _, job = self.state.job(self._project(req), int(req.params["job"]))
        data = job.artifacts.get(req.params["artifact"])
        if data is None:
            raise not_found()
        return web.Response(body=data, content_type="application/octet-stream")

    def _file_at(self, req: _Request) -> tuple[bytes, str, str]:
        project = self._project(req)
        ref = str(req.args.get("ref") or project.default_branch)
        sha = project.resolve(ref)
        if sha is None:
            raise not_found("Commit")
        data = project.file(sha, req.params["file"])
        if data is None:
            raise not_found("File")
        return data, ref, sha

    def _file_raw(self, req: _Request) -> web.Response:
        data, _, _ = self._file_at(req)
        return web.Response(body=data, content_type="text/plain", charset="utf-8")

    def _file(self, req: _Request) -> web.Response:
        data, ref, sha = self._file_at(req)
        return web.json_response(shapes.file_json(req.params["file"], data, ref, sha))

    def _commit(self, req: _Request) -> web.Response:
        project = self._project(req)
        sha = project.resolve(req.params["sha"])
        if sha is None:
            raise not_found("Commit")
        return web.json_response(shapes.commit_json(project, sha, self._url()))

    def _branch(self, req: _Request) -> web.Response:
        """GET /projects/:id/repository/branches/:branch, with ``protected`` and ``default``."""
        project = self._project(req)
        name = req.params["branch"]
        sha = project.branches.get(name)
        if sha is None:
            raise not_found("Branch")
        protected = project.protection(name) is not None
        body = shapes.branch_json(project, name, sha, protected, self._url())
        return web.json_response(body)

    def _protected_branch(self, req: _Request) -> web.Response:
        """GET /projects/:id/protected_branches/:name: the rule named exactly so."""
        project = self._project(req)
        name = req.params["name"]
        if name not in (project.protected or []):
            raise not_found()
        return web.json_response(shapes.protected_branch_json(project, name))

    def _page(self, req: _Request, items: list[dict[str, Any]]) -> web.Response:
        """GitLab's offset pagination: ``page``/``per_page``, X-* headers and a Link header; a
        page past the last is an empty list, as Kaminari pages it."""
        per_page = min(max(_int(req.args.get("per_page"), 20), 1), 100)
        total_pages = max(1, -(-len(items) // per_page))
        page = max(_int(req.args.get("page"), 1), 1)  # past the last page: an empty list
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(total_pages),
            "X-Next-Page": str(page + 1) if page < total_pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        links = {"next": page + 1} if page < total_pages else {}
        links |= {"first": 1, "last": total_pages}
        base = {**req.query, "per_page": str(per_page)}
        headers["Link"] = ", ".join(
            f'<{self._url()}{req.path}?{urlencode({**base, "page": n})}>; rel="{rel}"'
            for rel, n in links.items()
        )
        body = items[(page - 1) * per_page : page * per_page]
        return web.json_response(body, headers=headers)


# ---- request helpers ----------------------------------------------------------------------


async def read_body(request: web.Request) -> tuple[Any, dict[str, str] | None]:
    """A JSON body, or a form (``variables[KEY]=value`` as curl sends it), as Grape reads it."""
    if not request.can_read_body:
        return None, None
    if request.content_type == "application/json":
        try:
            return await request.json(), None
        except ValueError:
            return None, None
    form = await request.post()
    return None, {key: value for key, value in form.items() if isinstance(value, str)}


def _check_variables(project: StandInProject, variables: dict[str, str], level: int) -> None:
    """GitLab refuses a pipeline with variables the caller's role may not set: 400 with
    ``{"message": {"base": ["Insufficient permissions to set pipeline variables"]}}``."""
    if variables and not project.variables_allowed(level):
        raise ApiError(400, {"base": [VARIABLES_REFUSED]})


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), TRACE_CHUNK):
        yield bytes(view[start : start + TRACE_CHUNK])


def _same(given: str, known: str) -> bool:
    """Constant-time, and safe for any header text (compare_digest rejects non-ASCII str)."""
    return secrets.compare_digest(given.encode(), known.encode())


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _ref(args: dict[str, Any]) -> str:
    ref = args.get("ref")
    if not isinstance(ref, str) or not ref:
        raise ApiError(400, "ref is missing", key="error")
    return ref


def _variable_list(raw: Any) -> dict[str, str]:
    """Create-pipeline variables: ``[{key, value, variable_type}]`` in a JSON body."""
    if raw is None:
        return {}
    if not isinstance(raw, list) or not all(isinstance(v, dict) and "key" in v for v in raw):
        raise ApiError(400, "variables is invalid", key="error")
    for index, variable in enumerate(raw):
        if variable.get("variable_type", "env_var") not in ("env_var", "file"):
            message = f"variables[{index}][variable_type] does not have a valid value"
            raise ApiError(400, message, key="error")
    return {str(v["key"]): str(v.get("value", "")) for v in raw}


def _variable_map(args: dict[str, Any]) -> dict[str, str]:
    """Trigger variables: a JSON object, or form fields ``variables[KEY]=value``."""
    raw = args.get("variables")
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if raw is not None:
        raise ApiError(400, "variables is invalid", key="error")
    found = (re.fullmatch(r"variables\[([^\]]+)\]", key) for key in args)
    return {m.group(1): str(args[m.group(0)]) for m in found if m}


def _inputs(args: dict[str, Any]) -> dict[str, Any]:
    raw = args.get("inputs")
    return dict(raw) if isinstance(raw, dict) else {}


def _flag(value: Any) -> bool:
    """Grape's Boolean: python-gitlab sends ``True``, curl users ``true`` or ``1``."""
    return str(value).lower() in ("true", "1")


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
