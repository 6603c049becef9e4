"""The GitLab poller follows runs per project: one list of the pipelines updated since the last
round, then the jobs of only the pipelines that changed. The real poller, the real adapter
(python-gitlab) and the GitLab stand-in over HTTP, with a SQLite store; requests counted at the
stand-in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from tenacity import wait_none

from bot.domain.runs import RunState
from bot.ports import PipelineStatus
from bot.sandbox.gitlab.server import GitLabStandIn, StandInProject
from bot.services.training.followers import PipelinePoller
from bot.services.training.progress import RunProgress
from bot.store import Store
from integrations.gitlab import GitLabPipelines
from tests.helpers import queued_run

TOKEN = "glpat-polling-secret"
FRAUD, CHURN = "ml/fraud", "ml/churn"
LIST = r"/pipelines$"
JOBS = r"/pipelines/\d+/jobs$"
ONE = r"/pipelines/\d+$"


class Heard:
    """Where the poller hands what moved (RunProgress.pipeline_changed): recorded in order."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, int, str, tuple[str, ...]]] = []

    async def pipeline_changed(self, project: str, status: PipelineStatus) -> bool:
        jobs = tuple(f"{j.name}:{j.status}" for j in status.jobs)
        self.changes.append((project, status.id, status.status, jobs))
        return True


@dataclass
class World:
    stand_in: GitLabStandIn
    store: Store
    pipelines: GitLabPipelines
    heard: Heard
    poller: PipelinePoller

    async def start_runs(self, project: str, count: int) -> list[int]:
        """``count`` recorded runs, each with a pipeline whose first job is pending."""
        ids = []
        for _ in range(count):
            run = await self.store.runs.create(queued_run(project=project))
            status = await self.pipelines.create(project, "main", {"MLOPS_RUN_ID": str(run.id)})
            await self.store.runs.update(run.id, pipeline_id=status.id, state=RunState.RUNNING)
            self.stand_in.advance(project, status.id)
            ids.append(status.id)
        return ids

    async def round(self) -> tuple[bool, dict[str, int]]:
        """One polling round and the requests it made, by kind."""
        before = len(self.stand_in.calls)
        moved = await self.poller.poll_once()
        made = self.stand_in.calls[before:]
        assert all(c.method == "GET" and c.status == 200 for c in made), made
        kinds = {"list": LIST, "jobs": JOBS, "one": ONE}
        counts = {k: sum(1 for c in made if _matches(p, c.path)) for k, p in kinds.items()}
        assert sum(counts.values()) == len(made), [c.path for c in made]
        return moved, counts


def _matches(pattern: str, path: str) -> bool:
    return re.search(pattern, path) is not None


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    stand_in = GitLabStandIn(token=TOKEN, projects=[StandInProject(FRAUD), StandInProject(CHURN)])
    await stand_in.start()
    store = Store.from_url(f"sqlite:///{tmp_path}/bot.db")
    await store.migrate()
    pipelines = GitLabPipelines.from_settings(stand_in.url, TOKEN, 5.0, wait=wait_none())
    heard = Heard()
    poller = PipelinePoller(
        store, pipelines, cast(RunProgress, heard), every=1, max_every=2, list_limit=150
    )
    try:
        yield World(stand_in, store, pipelines, heard, poller)
    finally:
        await store.close()
        await stand_in.stop()


async def test_a_round_lists_once_per_project_and_reads_only_what_changed(world: World) -> None:
    fraud = await world.start_runs(FRAUD, 10)
    churn = await world.start_runs(CHURN, 2)

    moved, first = await world.round()
    assert moved and first == {"list": 2, "jobs": 12, "one": 0}  # all new: listed, jobs read
    assert len(world.heard.changes) == 12

    moved, idle = await world.round()
    assert not moved and idle == {"list": 2, "jobs": 0, "one": 0}

    for pipeline_id in fraud[:3]:
        world.stand_in.advance(FRAUD, pipeline_id)  # a runner picks prepare up
    world.stand_in.advance(CHURN, churn[0], to="failed")
    world.heard.changes.clear()
    moved, busy = await world.round()
    assert moved and busy == {"list": 2, "jobs": 4, "one": 0}
    by_id = {change[1]: change for change in world.heard.changes}
    assert sorted(by_id) == sorted([*fraud[:3], churn[0]])
    assert by_id[fraud[0]][3] == ("prepare:running", "train:created", "evaluate:created")
    assert by_id[churn[0]][2] == "failed"

    listed = world.stand_in.calls_to("GET", LIST)[-1].query
    assert listed["order_by"] == "updated_at" and listed["sort"] == "asc"
    assert listed["updated_after"].endswith("Z")


async def test_a_run_outside_the_listed_window_is_read_once_by_itself(world: World) -> None:
    """A pipeline last updated long ago (GitLab's clock) is not listed: read it whole, once."""
    (old,) = await world.start_runs(FRAUD, 1)
    world.stand_in.pipeline(FRAUD, old).updated_at = datetime.now(UTC) - timedelta(hours=3)
    moved, first = await world.round()
    assert moved and first == {"list": 1, "jobs": 1, "one": 1}
    moved, idle = await world.round()
    assert not moved and idle == {"list": 1, "jobs": 0, "one": 0}
    world.stand_in.advance(FRAUD, old)  # the update brings it into the window
    moved, later = await world.round()
    assert moved and later == {"list": 1, "jobs": 1, "one": 0}


async def test_pages_of_other_pipelines_are_followed_and_bounded(world: World) -> None:
    """Pipelines the bot did not start (pushes, merge requests) share the list: it pages
    through them 100 at a time, at most ``list_limit`` per round, and resumes after them."""
    (mine,) = await world.start_runs(FRAUD, 1)
    project = world.stand_in.state.project(FRAUD)
    # GitLab writes its stamps to the millisecond: the cursor resumes at the 150th's
    # millisecond, so the others are a millisecond apart (a fast machine makes dozens per ms).
    base = datetime.now(UTC) - timedelta(seconds=1)
    world.stand_in.pipeline(FRAUD, mine).updated_at = base
    for i in range(200):
        other = world.stand_in.state.create(project, "main", source="push", variables={}, inputs={})
        world.stand_in.advance(FRAUD, other.id)
        other.updated_at = base + timedelta(milliseconds=i + 1)
    moved, first = await world.round()
    assert moved and first == {"list": 2, "jobs": 1, "one": 0}  # 150 of 201: two pages
    moved, second = await world.round()
    assert not moved and second["list"] == 1 and second["jobs"] == 0  # the other 51
    world.stand_in.advance(FRAUD, mine)
    moved, third = await world.round()
    assert moved and third == {"list": 1, "jobs": 1, "one": 0}


async def test_finished_runs_are_no_longer_followed(world: World) -> None:
    fraud = await world.start_runs(FRAUD, 2)
    await world.round()
    run = await world.store.runs.by_pipeline(FRAUD, fraud[0])
    assert run is not None
    await world.store.runs.update(run.id, state=RunState.CANCELED)
    world.stand_in.advance(FRAUD, fraud[0], to="canceled")
    world.heard.changes.clear()
    moved, counts = await world.round()
    assert not moved and counts == {"list": 1, "jobs": 0, "one": 0}
    assert run.id not in world.poller.seen
