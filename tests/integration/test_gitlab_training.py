"""GitLabPipelines for /train beyond create/status: finding a run's pipeline, listing pipelines
as GitLab filters them. Against the GitLab stand-in over real HTTP, python-gitlab unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import gitlab
import pytest
from tenacity import wait_none

from bot.errors import Conflict
from bot.sandbox.gitlab.server import GitLabStandIn, StandInProject
from integrations.gitlab import GitLabPipelines

TOKEN = "glpat-training-secret"
TRIGGER = "glptt-training-trigger"
RUN = {"MLOPS_RUN_ID": "7", "MLOPS_MODEL": "fraud", "HP_LR": "0.01"}


@pytest.fixture
async def stand_in() -> AsyncIterator[GitLabStandIn]:
    server = GitLabStandIn(
        token=TOKEN,
        projects=[
            StandInProject("ml/fraud", branches={"dev": "d" * 40}),
            StandInProject("ml/churn", trigger_tokens=[TRIGGER]),
        ],
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def pipelines(stand_in: GitLabStandIn) -> GitLabPipelines:
    return GitLabPipelines.from_settings(stand_in.url, TOKEN, 2.0, wait=wait_none())


def an_hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


async def test_find_returns_the_pipeline_carrying_the_runs_variables(
    stand_in: GitLabStandIn, pipelines: GitLabPipelines
) -> None:
    other = await pipelines.create("ml/fraud", "main", {**RUN, "MLOPS_RUN_ID": "8"})
    mine = await pipelines.create("ml/fraud", "main", RUN)
    await pipelines.create("ml/fraud", "dev", RUN)  # another ref: not this run's
    await pipelines.create("ml/fraud", "main", {**RUN, "HP_LR": "0.1"})

    found = await pipelines.find("ml/fraud", "main", RUN, an_hour_ago())

    assert found is not None and found.id == mine.id != other.id
    assert (found.ref, found.sha, found.web_url) == (mine.ref, mine.sha, mine.web_url)
    # with its jobs, as status() reads them: a pipeline found after a restart may have finished
    assert found.jobs == (await pipelines.status("ml/fraud", mine.id)).jobs
    planned = stand_in.pipeline("ml/fraud", mine.id).jobs
    assert [(j.id, j.name) for j in found.jobs] == [(j.id, j.plan.name) for j in planned]
    lists = stand_in.calls_to("GET", r"/pipelines$")
    assert len(lists) == 1 and lists[0].query["ref"] == "main"
    assert lists[0].query["updated_after"].endswith("Z")


async def test_find_is_none_when_no_pipeline_matches(
    stand_in: GitLabStandIn, pipelines: GitLabPipelines
) -> None:
    assert await pipelines.find("ml/fraud", "main", RUN, an_hour_ago()) is None
    await pipelines.create("ml/fraud", "main", RUN)
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert await pipelines.find("ml/fraud", "main", RUN, later) is None
    variable_reads = stand_in.calls_to("GET", r"/variables$")
    assert variable_reads == []  # nothing updated after `later`: no detail reads


async def test_find_needs_an_api_token(stand_in: GitLabStandIn) -> None:
    triggers_only = GitLabPipelines.from_settings(
        stand_in.url, None, 2.0, trigger_tokens={"ml/churn": TRIGGER}
    )
    with pytest.raises(Conflict, match="needs an API token"):
        await triggers_only.find("ml/churn", "main", RUN, an_hour_ago())


async def test_the_stand_in_lists_pipelines_as_gitlab_filters_and_orders_them(
    stand_in: GitLabStandIn, pipelines: GitLabPipelines
) -> None:
    first = await pipelines.create("ml/fraud", "main", {})
    second = await pipelines.create("ml/fraud", "dev", {})
    stand_in.advance("ml/fraud", first.id, to="success")
    gl = gitlab.Gitlab(url=stand_in.url, private_token=TOKEN, timeout=2)

    def listing(**filters: str) -> list[int]:
        project = gl.projects.get("ml/fraud", lazy=True)
        options: dict[str, Any] = {"get_all": True, **filters}
        return [p.id for p in project.pipelines.list(**options)]

    assert await asyncio.to_thread(listing) == [second.id, first.id]
    assert await asyncio.to_thread(listing, sort="asc") == [first.id, second.id]
    assert await asyncio.to_thread(listing, ref="dev") == [second.id]
    assert await asyncio.to_thread(listing, scope="finished") == [first.id]
    assert await asyncio.to_thread(listing, status="created") == [second.id]
    assert await asyncio.to_thread(listing, order_by="updated_at") == [first.id, second.id]
    with pytest.raises(gitlab.GitlabListError) as bad:
        await asyncio.to_thread(listing, order_by="created_at")
    assert bad.value.response_code == 400
    assert "order_by does not have a valid value" in str(bad.value.error_message)
