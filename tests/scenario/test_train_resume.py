"""A run either has its pipeline or gets one, never two: restarts between the run row and the
pipeline, through the whole sandbox (signed commands, the GitLab stand-in over HTTP)."""

from __future__ import annotations

import asyncio
import urllib.parse

import aiohttp
import gitlab
import pytest

from bot.domain.runs import Run, RunState
from bot.sandbox.gitlab.projects import GITLAB_TOKEN
from bot.sandbox.people import SIGNING_SECRET
from bot.sandbox.runner import Sandbox
from bot.sandbox.signing import signed_headers
from bot.services.training.launch import run_variables
from tests import helpers
from tests.helpers import eventually

FRAUD = "ml/fraud"
CREATE = r"/projects/[^/]+/pipeline$"


@pytest.fixture(autouse=True)
def manual_pipelines(sandbox: Sandbox) -> None:
    sandbox.gitlab.auto_advance(None)


def queued_run() -> Run:
    """A run row as /train writes it before asking GitLab."""
    return helpers.queued_run("U0ALICE", dataset="v7", params={"lr": "0.01"}, project=FRAUD)


async def has_pipeline(sandbox: Sandbox, run_id: int) -> bool:
    run = await sandbox.bot.store.runs.get(run_id)
    return run is not None and run.pipeline_id is not None


async def test_a_run_recorded_before_a_crash_gets_its_pipeline_after_the_restart(
    sandbox: Sandbox,
) -> None:
    run = await sandbox.bot.store.runs.create(queued_run())
    await sandbox.restart()
    await eventually(lambda: has_pipeline(sandbox, run.id), timeout=10)
    (pipeline,) = sandbox.gitlab.pipelines(FRAUD)
    assert pipeline.variables == run_variables(run)
    resumed = await sandbox.bot.store.runs.get(run.id)
    assert resumed is not None and resumed.pipeline_id == pipeline.id
    assert resumed.sha == pipeline.sha
    sandbox.gitlab.complete(FRAUD, pipeline.id)

    async def succeeded() -> bool:
        done = await sandbox.bot.store.runs.get(run.id)
        return done is not None and done.state == RunState.SUCCEEDED

    await eventually(succeeded, timeout=10)


async def test_a_pipeline_created_just_before_the_crash_is_found_not_made_again(
    sandbox: Sandbox,
) -> None:
    run = await sandbox.bot.store.runs.create(queued_run())
    other = await create_pipeline(sandbox, {**run_variables(run), "MLOPS_RUN_ID": "99"})
    made = await create_pipeline(sandbox, run_variables(run))
    sandbox.gitlab.calls.clear()
    await sandbox.restart()
    await eventually(lambda: has_pipeline(sandbox, run.id), timeout=10)
    resumed = await sandbox.bot.store.runs.get(run.id)
    assert resumed is not None and resumed.pipeline_id == made != other
    assert len(sandbox.gitlab.pipelines(FRAUD)) == 2
    assert sandbox.gitlab.calls_to("POST", CREATE) == []


async def test_a_pipeline_that_finished_while_the_bot_was_down_is_judged_on_its_results(
    sandbox: Sandbox,
) -> None:
    run = await sandbox.bot.store.runs.create(queued_run())
    made = await create_pipeline(sandbox, run_variables(run))
    assert sandbox.gitlab.complete(FRAUD, made) == "success"
    await sandbox.restart()
    await eventually(lambda: judged(sandbox, run.id), timeout=10)
    resumed = await sandbox.bot.store.runs.get(run.id)
    assert resumed is not None and resumed.pipeline_id == made
    assert resumed.state == RunState.SUCCEEDED and resumed.metrics
    assert resumed.verdict is not None and resumed.verdict["passed"], resumed.verdict


async def judged(sandbox: Sandbox, run_id: int) -> bool:
    run = await sandbox.bot.store.runs.get(run_id)
    return run is not None and run.verdict is not None


async def create_pipeline(sandbox: Sandbox, variables: dict[str, str]) -> int:
    """As the bot's previous life did, through GitLab's API."""
    gl = gitlab.Gitlab(url=sandbox.gitlab.url, private_token=GITLAB_TOKEN, timeout=5)
    data = {"ref": "main", "variables": [{"key": k, "value": v} for k, v in variables.items()]}
    project = gl.projects.get(FRAUD, lazy=True)
    created = await asyncio.to_thread(project.pipelines.create, data)
    return int(created.id)


def train_body(sandbox: Sandbox, text: str, trigger: str) -> str:
    return urllib.parse.urlencode(
        {
            "team_id": "T0SANDBOX",
            "channel_id": "C0SANDBOX",
            "user_id": "U0ALICE",
            "command": "/train",
            "text": text,
            "trigger_id": trigger,
            "response_url": sandbox.slack.new_response_url(channel="C0SANDBOX", user="U0ALICE"),
        }
    )


async def test_a_restart_while_gitlab_creates_the_pipeline_starts_one_run_and_one_pipeline(
    sandbox: Sandbox,
) -> None:
    """The bot stops while its create request hangs (GitLab never made the pipeline); the acked
    /train runs again after the restart and finds its run instead of recording another."""
    sandbox.gitlab.fail(CREATE, status=502, delay=30)
    body = train_body(sandbox, "fraud dataset=v7", "t-resume")
    async with aiohttp.ClientSession() as http:
        headers = signed_headers(SIGNING_SECRET, body)
        async with http.post(f"{sandbox.url}/slack/events", data=body, headers=headers) as r:
            assert r.status == 200
    await sandbox.gitlab.wait_for(lambda: sandbox.gitlab.arrived("POST", CREATE), 10)
    assert sandbox.bot.interactions is not None
    await sandbox.bot.interactions.stop(grace=0)  # the kill: the command's work is cut short
    assert sandbox.gitlab.pipelines(FRAUD) == []
    await sandbox.restart()
    await eventually(lambda: has_pipeline(sandbox, 1), timeout=15)
    assert len(sandbox.gitlab.pipelines(FRAUD)) == 1
    assert [r.id for r in await sandbox.bot.store.runs.recent()] == [1]
    run = await sandbox.bot.store.runs.get(1)
    assert run is not None and run.request == "trigger:t-resume"
