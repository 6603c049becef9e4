"""GitLabPipelines (python-gitlab) against the GitLab stand-in, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import gitlab
import pytest
from structlog.testing import capture_logs
from tenacity import wait_none

from bot.errors import ExternalError, NotFound, UserInputError
from bot.ports import PipelineStatus
from bot.sandbox.gitlab.server import GitLabStandIn, JobPlan, StandInProject
from integrations.gitlab import GitLabPipelines, tail

TOKEN = "glpat-integration-secret"
TRIGGER = "glptt-trigger-secret"
READ_ONLY = "glpat-read-only-secret"
SHA = "4f3c2b1a" * 5
CREATE = r"/projects/[^/]+/pipeline$"
GET_PIPELINE = r"/pipelines/\d+$"


@pytest.fixture
async def stand_in() -> AsyncIterator[GitLabStandIn]:
    server = GitLabStandIn(
        token=TOKEN,
        read_only_tokens=[READ_ONLY],
        projects=[
            StandInProject("ml/fraud", branches={"main": SHA}),
            StandInProject("ml/churn", trigger_tokens=[TRIGGER]),
        ],
    )
    await server.start()
    yield server
    await server.stop()


def adapter(stand_in: GitLabStandIn, token: str | None = TOKEN, **options: Any) -> GitLabPipelines:
    options.setdefault("timeout", 2.0)
    options.setdefault("trigger_tokens", {"ml/churn": TRIGGER})
    return GitLabPipelines.from_settings(stand_in.url, token, wait=wait_none(), **options)


def client(stand_in: GitLabStandIn, token: str | None = TOKEN) -> gitlab.Gitlab:
    """A bare python-gitlab client; call it from a thread (the stand-in shares the loop)."""
    return gitlab.Gitlab(url=stand_in.url, private_token=token, timeout=2)


@pytest.fixture
def pipelines(stand_in: GitLabStandIn) -> GitLabPipelines:
    return adapter(stand_in)


def shape(status: PipelineStatus) -> tuple[str, list[tuple[str, str]]]:
    return status.status, [(job.name, job.status) for job in status.jobs]


# -- creating pipelines -----------------------------------------------------------------------


async def test_create_with_the_api_token_sends_variables(
    stand_in: GitLabStandIn, pipelines: GitLabPipelines
) -> None:
    status = await pipelines.create("ml/fraud", "main", {"DATASET": "v7", "LR": "0.01"})

    assert (status.status, status.ref, status.sha, status.jobs) == ("created", "main", SHA, ())
    assert status.web_url == f"{stand_in.url}/ml/fraud/-/pipelines/{status.id}"
    created = stand_in.pipeline("ml/fraud", status.id)
    assert (created.source, created.variables) == ("api", {"DATASET": "v7", "LR": "0.01"})
    lookup, create = stand_in.calls
    assert (lookup.method, lookup.path) == ("GET", "/api/v4/projects/ml%2Ffraud")
    assert create.json == {
        "ref": "main",
        "variables": [{"key": "DATASET", "value": "v7"}, {"key": "LR", "value": "0.01"}],
    }


async def test_create_with_a_trigger_token(
    stand_in: GitLabStandIn, pipelines: GitLabPipelines
) -> None:
    status = await pipelines.create("ml/churn", "main", {"DATASET": "v2"})

    created = stand_in.pipeline("ml/churn", status.id)
    assert (created.source, created.variables) == ("trigger", {"DATASET": "v2"})
    (trigger,) = stand_in.calls_to("POST", r"/trigger/pipeline$")
    # python-gitlab always sends ``inputs``, even when the caller gives none.
    assert trigger.json == {
        "ref": "main",
        "token": TRIGGER,
        "variables": {"DATASET": "v2"},
        "inputs": {},
    }
    assert not stand_in.calls_to("POST", CREATE)


async def test_trigger_only_setup_needs_no_api_token(stand_in: GitLabStandIn) -> None:
    status = await adapter(stand_in, token=None).create("ml/churn", "main", {})

    assert stand_in.pipeline("ml/churn", status.id).source == "trigger"
    assert [c.method for c in stand_in.calls] == ["POST"]


# -- following a pipeline ---------------------------------------------------------------------


async def test_status_follows_the_pipeline_stage_by_stage(
    stand_in: GitLabStandIn, pipelines: GitLabPipelines
) -> None:
    created = await pipelines.create("ml/fraud", "main", {})
    seen = [shape(await pipelines.status("ml/fraud", created.id))]
    for _ in range(7):
        stand_in.advance("ml/fraud", created.id)
        seen.append(shape(await pipelines.status("ml/fraud", created.id)))

    c, p, r, s = "created", "pending", "running", "success"
    assert seen == [
        (c, [("prepare", c), ("train", c), ("evaluate", c)]),
        (p, [("prepare", p), ("train", c), ("evaluate", c)]),
        (r, [("prepare", r), ("train", c), ("evaluate", c)]),
        (r, [("prepare", s), ("train", p), ("evaluate", c)]),
        (r, [("prepare", s), ("train", r), ("evaluate", c)]),
        (r, [("prepare", s), ("train", s), ("evaluate", p)]),
        (r, [("prepare", s), ("train", s), ("evaluate", r)]),
        (s, [("prepare", s), ("train", s), ("evaluate", s)]),
    ]
    final = await pipelines.status("ml/fraud", created.id)
    assert all(job.web_url == f"{stand_in.url}/ml/fraud/-/jobs/{job.id}" for job in final.jobs)


async def test_a_failed_job_fails_the_pipeline_and_its_log_tail_is_readable(
    stand_in: GitLabStandIn, pipelines: GitLabPipelines
) -> None:
    created = await pipelines.create("ml/fraud", "main", {})
    trace = "".join(f"line {n}\n" for n in range(1, 101))
    stand_in.fail_job("ml/fraud", created.id, "train", trace)

    assert stand_in.complete("ml/fraud", created.id) == "failed"
    status = await pipelines.status("ml/fraud", created.id)
    assert shape(status) == (
        "failed",
        [("prepare", "success"), ("train", "failed"), ("evaluate", "skipped")],
    )
    train = next(job for job in status.jobs if job.name == "train")
    log = await pipelines.job_log_tail("ml/fraud", train.id)
    assert log.splitlines() == [f"line {n}" for n in range(71, 101)]


def test_log_tail_reads_like_a_terminal() -> None:
    raw = "section_start:1:step\r\x1b[0K\x1b[32;1m$ train\x1b[0m\r\nepoch 1\repoch 2\r\nERROR\n"

    assert tail(raw, 30) == "$ train\nepoch 2\nERROR"
    assert tail(raw, 1) == "ERROR"
    assert tail(raw, 0) == ""


async def test_artifacts_are_read_and_a_missing_one_is_none(
    stand_in: GitLabStandIn, pipelines: GitLabPipelines
) -> None:
    created = await pipelines.create("ml/fraud", "main", {})
    stand_in.attach_artifact("ml/fraud", created.id, "evaluate", "out/metrics.json", b'{"f1": 1}')
    stand_in.complete("ml/fraud", created.id)
    job = stand_in.pipeline("ml/fraud", created.id).job("evaluate")

    assert await pipelines.job_artifact("ml/fraud", job.id, "out/metrics.json") == b'{"f1": 1}'
    assert await pipelines.job_artifact("ml/fraud", job.id, "metrics.json") is None
    assert await pipelines.job_artifact("ml/fraud", 999_999, "out/metrics.json") is None


async def test_cancel(stand_in: GitLabStandIn, pipelines: GitLabPipelines) -> None:
    created = await pipelines.create("ml/fraud", "main", {})
    stand_in.advance("ml/fraud", created.id)
    stand_in.advance("ml/fraud", created.id)

    await pipelines.cancel("ml/fraud", created.id)

    status = await pipelines.status("ml/fraud", created.id)
    assert shape(status) == (
        "canceled",
        [("prepare", "canceled"), ("train", "canceled"), ("evaluate", "canceled")],
    )


# -- errors -----------------------------------------------------------------------------------


async def test_an_unknown_project_is_not_found(pipelines: GitLabPipelines) -> None:
    with pytest.raises(NotFound, match="GitLab project ml/nope not found"):
        await pipelines.create("ml/nope", "main", {})
    with pytest.raises(NotFound, match="ml/nope"):
        await pipelines.status("ml/nope", 1)


async def test_an_unknown_pipeline_is_not_found(pipelines: GitLabPipelines) -> None:
    with pytest.raises(NotFound, match="pipeline 424242 not found in ml/fraud"):
        await pipelines.status("ml/fraud", 424242)


@pytest.mark.parametrize("project", ["ml/fraud", "ml/churn"])
async def test_an_unknown_ref_is_the_users_mistake(
    pipelines: GitLabPipelines, project: str
) -> None:
    with pytest.raises(UserInputError, match=r"'no-such-branch'.*Reference not found"):
        await pipelines.create(project, "no-such-branch", {})


async def test_a_502_is_retried(stand_in: GitLabStandIn, pipelines: GitLabPipelines) -> None:
    stand_in.fail(CREATE, status=502)
    stand_in.fail(GET_PIPELINE, status=503)

    with capture_logs() as logs:
        created = await pipelines.create("ml/fraud", "main", {"LR": "0.1"})
        status = await pipelines.status("ml/fraud", created.id)

    assert [c.status for c in stand_in.calls_to("POST", CREATE)] == [502, 201]
    assert [c.status for c in stand_in.calls_to("GET", GET_PIPELINE)] == [503, 200]
    assert len(stand_in.pipelines("ml/fraud")) == 1
    assert status.status == "created"
    assert [entry["status"] for entry in logs if entry["event"] == "gitlab.retry"] == [502, 503]
    assert TOKEN not in repr(logs)


async def test_persistent_5xx_fails_after_bounded_attempts(
    stand_in: GitLabStandIn, pipelines: GitLabPipelines
) -> None:
    created = await pipelines.create("ml/fraud", "main", {})
    stand_in.fail(GET_PIPELINE, status=502, times=100)

    with pytest.raises(ExternalError, match="HTTP 502") as caught:
        await pipelines.status("ml/fraud", created.id)

    assert len(stand_in.calls_to("GET", GET_PIPELINE)) == 3
    assert "<html" not in str(caught.value)


async def test_a_create_that_may_have_started_is_not_sent_twice(
    stand_in: GitLabStandIn, pipelines: GitLabPipelines
) -> None:
    stand_in.fail(CREATE, status=500, times=5)

    with pytest.raises(ExternalError, match="HTTP 500") as caught:
        await pipelines.create("ml/fraud", "main", {})

    assert len(stand_in.calls_to("POST", CREATE)) == 1
    assert str(caught.value).endswith("HTTP 500 Internal Server Error")  # the code said once


async def test_a_hung_gitlab_times_out_and_is_retried(stand_in: GitLabStandIn) -> None:
    pipelines = adapter(stand_in, timeout=0.2)
    created = await pipelines.create("ml/fraud", "main", {})
    stand_in.fail(GET_PIPELINE, status=502, delay=0.6)

    status = await pipelines.status("ml/fraud", created.id)

    assert status.id == created.id
    await stand_in.wait_for(lambda: len(stand_in.calls_to("GET", GET_PIPELINE)) == 2)


async def test_rate_limits_wait_for_retry_after_a_bounded_number_of_times(
    stand_in: GitLabStandIn, pipelines: GitLabPipelines
) -> None:
    created = await pipelines.create("ml/fraud", "main", {})
    stand_in.fail(GET_PIPELINE, status=429, retry_after=0)
    assert (await pipelines.status("ml/fraud", created.id)).id == created.id

    stand_in.fail(GET_PIPELINE, status=429, retry_after=0, times=100)
    with pytest.raises(ExternalError, match="HTTP 429"):
        await pipelines.status("ml/fraud", created.id)
    # One success after one 429, then python-gitlab's own 1 + 2 tries; tenacity adds none.
    assert len(stand_in.calls_to("GET", GET_PIPELINE)) == 2 + 1 + 2


async def test_gitlab_down_is_an_external_error(stand_in: GitLabStandIn) -> None:
    pipelines = adapter(stand_in)
    await stand_in.stop()

    with pytest.raises(ExternalError, match="GitLab did not answer"):
        await pipelines.create("ml/fraud", "main", {})


async def test_a_wrong_token_is_refused_without_showing_it(stand_in: GitLabStandIn) -> None:
    wrong = "glpat-wrong-secret-value"

    with pytest.raises(ExternalError, match="refused the token") as caught:
        await adapter(stand_in, token=wrong).create("ml/fraud", "main", {})

    assert wrong not in str(caught.value)
    assert [c.status for c in stand_in.calls] == [401]


async def test_a_wrong_trigger_token_is_refused_without_showing_it(
    stand_in: GitLabStandIn,
) -> None:
    wrong = "glptt-wrong-trigger"
    pipelines = adapter(stand_in, trigger_tokens={"ml/churn": wrong})

    with pytest.raises(ExternalError, match="trigger token for ml/churn") as caught:
        await pipelines.create("ml/churn", "main", {})

    assert wrong not in str(caught.value)


async def test_a_read_only_token_cannot_start_pipelines(stand_in: GitLabStandIn) -> None:
    with pytest.raises(ExternalError, match="403 Forbidden"):
        await adapter(stand_in, token=READ_ONLY).create("ml/fraud", "main", {})


# -- the stand-in's other endpoints, through python-gitlab -------------------------------------


async def test_retry_replaces_failed_jobs_and_the_pipeline_runs_again(
    stand_in: GitLabStandIn,
) -> None:
    project = await asyncio.to_thread(client(stand_in).projects.get, "ml/fraud")
    pipeline = await asyncio.to_thread(project.pipelines.create, {"ref": "main"})
    stand_in.advance("ml/fraud", pipeline.id, to="failed")

    first = {j.name: j.id for j in await asyncio.to_thread(pipeline.jobs.list, get_all=True)}

    await asyncio.to_thread(pipeline.retry)
    stand_in.advance("ml/fraud", pipeline.id, to="success")

    def check() -> None:
        again = project.pipelines.get(pipeline.id)
        jobs = again.jobs.list(get_all=True)
        assert again.status == "success"
        assert sorted(j.name for j in jobs) == sorted(first)
        assert all(j.id > max(first.values()) for j in jobs)
        assert len(again.jobs.list(get_all=True, include_retried=True)) == 6
        assert len(again.jobs.list(get_all=True, per_page=2)) == 3

    await asyncio.to_thread(check)


async def test_repository_files_and_commits(stand_in: GitLabStandIn) -> None:
    stand_in.set_file("ml/fraud", "ci/train.yaml", b"epochs: 3\n")

    def read() -> None:
        project = client(stand_in).projects.get("ml/fraud")
        assert project.files.raw("ci/train.yaml", ref="main") == b"epochs: 3\n"
        assert project.files.get("ci/train.yaml", ref="main").decode() == b"epochs: 3\n"
        assert project.commits.get("main").id == SHA
        with pytest.raises(gitlab.GitlabGetError, match="404 File Not Found"):
            project.files.raw("nope.yaml", ref="main")
        with pytest.raises(gitlab.GitlabGetError, match="404 Commit Not Found"):
            project.commits.get("no-such-branch")

    await asyncio.to_thread(read)


async def test_anonymous_callers_do_not_see_private_projects(stand_in: GitLabStandIn) -> None:
    with pytest.raises(gitlab.GitlabGetError, match="404 Project Not Found"):
        await asyncio.to_thread(client(stand_in, token=None).projects.get, "ml/fraud")


async def test_auto_advance_runs_pipelines_to_the_end(stand_in: GitLabStandIn) -> None:
    project = StandInProject("ml/quick", jobs=[JobPlan("fit", "train", duration_s=0.0)])
    stand_in.add_project(project)
    pipelines = adapter(stand_in)
    created = await pipelines.create("ml/quick", "main", {})

    stand_in.auto_advance(0.01)
    await stand_in.wait_for(lambda: stand_in.pipeline("ml/quick", created.id).status == "success")
    stand_in.auto_advance(None)


# -- branches: where deploy configs may be read --------------------------------------------------


async def test_branch_reports_the_head_and_whether_it_is_protected(
    stand_in: GitLabStandIn, pipelines: GitLabPipelines
) -> None:
    stand_in.add_branch("ml/fraud", "feature/x", "ab12" * 10)
    stand_in.protect("ml/fraud", "main", "release-*")
    stand_in.add_branch("ml/fraud", "release-1", "cd34" * 10)

    main = await pipelines.branch("ml/fraud")
    assert (main.name, main.sha, main.protected, main.default) == ("main", SHA, True, True)
    feature = await pipelines.branch("ml/fraud", "feature/x")
    assert (feature.sha, feature.protected, feature.default) == ("ab12" * 10, False, False)
    assert (await pipelines.branch("ml/fraud", "release-1")).protected  # a wildcard rule
    assert stand_in.calls_to("GET", r"/repository/branches/feature%2Fx$")
    with pytest.raises(NotFound, match="ml/fraud has no branch gone"):
        await pipelines.branch("ml/fraud", "gone")


async def test_branch_needs_an_api_token(stand_in: GitLabStandIn) -> None:
    with pytest.raises(ExternalError, match=r"needs a GitLab API token \(gitlab\.token\)"):
        await adapter(stand_in, token=None).branch("ml/churn")


async def test_branch_and_protected_branch_shapes_as_gitlab_answers(
    stand_in: GitLabStandIn,
) -> None:
    def read() -> None:
        project = client(stand_in).projects.get("ml/fraud")
        branch = project.branches.get("main").attributes
        assert branch["commit"]["id"] == SHA and branch["protected"] and branch["default"]
        assert {"merged", "developers_can_push", "can_push", "web_url"} <= set(branch)
        rule = project.protectedbranches.get("main").attributes
        assert rule["name"] == "main" and rule["push_access_levels"][0]["access_level"] == 40
        with pytest.raises(gitlab.GitlabGetError, match="404 Branch Not Found"):
            project.branches.get("gone")
        with pytest.raises(gitlab.GitlabGetError, match="404 Not Found"):
            project.protectedbranches.get("feature")

    await asyncio.to_thread(read)
