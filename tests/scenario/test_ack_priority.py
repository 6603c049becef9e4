"""Acks come first: while Slack waits on the edge, recorded commands start one at a time, a
``busy_gap`` apart, never none."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator

import aiohttp

from bot.sandbox.people import SIGNING_SECRET
from bot.sandbox.runner import Sandbox
from bot.sandbox.signing import signed_headers
from handlers.slack_edge import QUIET_SECONDS, SlackEdge
from tests.helpers import eventually


def list_command(sandbox: Sandbox, trigger: str) -> str:
    return urllib.parse.urlencode(
        {
            "team_id": "T0SANDBOX",
            "channel_id": "C0SANDBOX",
            "user_id": "U0DAVE",
            "command": "/train",
            "text": "list fraud",
            "trigger_id": trigger,
            "response_url": sandbox.slack.new_response_url(channel="C0SANDBOX", user="U0DAVE"),
        }
    )


async def post(http: aiohttp.ClientSession, sandbox: Sandbox, body: str) -> int:
    headers = signed_headers(SIGNING_SECRET, body)
    async with http.post(
        f"{sandbox.url}/slack/events", data=body.encode(), headers=headers
    ) as response:
        await response.read()
        return response.status


@contextlib.asynccontextmanager
async def slow_request(http: aiohttp.ClientSession, sandbox: Sandbox) -> AsyncIterator[None]:
    """A signed command whose body trickles in: the edge is answering Slack all along."""
    body = list_command(sandbox, "t-slow").encode()
    release = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield body[:10]
        await release.wait()
        yield body[10:]

    headers = signed_headers(SIGNING_SECRET, body.decode())
    headers["Content-Length"] = str(len(body))
    url = f"{sandbox.url}/slack/events"
    posting = asyncio.create_task(http.post(url, data=trickle(), headers=headers))
    edge = sandbox.bot.edge
    assert edge is not None
    async with asyncio.timeout(5):
        while not edge.busy():
            await asyncio.sleep(0.01)
    try:
        yield
    finally:
        release.set()
        response = await posting
        assert response.status == 200
        response.release()


@contextlib.contextmanager
def starts_while_acking(sandbox: Sandbox) -> Iterator[list[float]]:
    """Samples, every loop turn, when the newest listener started, while the edge was busy;
    yields the list of distinct start times seen."""
    processor, edge = sandbox.bot.interactions, sandbox.bot.edge
    assert processor is not None and edge is not None
    starts: list[float] = []

    async def sample() -> None:
        while True:
            if edge.busy() and processor.last_start not in starts:
                starts.append(processor.last_start)
            await asyncio.sleep(0)

    sampler = asyncio.get_running_loop().create_task(sample())
    try:
        yield starts
    finally:
        sampler.cancel()


async def processed(sandbox: Sandbox) -> int:
    return (await sandbox.bot.store.interactions.counts()).get("processed", 0)


async def test_commands_recorded_while_slack_waits_still_run_a_few_at_a_time(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    processor = sandbox.bot.interactions
    assert processor is not None and processor.concurrency == 8
    processor.busy_gap = 0.1  # a tenth of the default: 24 starts in seconds, not in 24
    with starts_while_acking(sandbox) as starts:
        async with slow_request(http, sandbox):
            statuses = await asyncio.gather(
                *(post(http, sandbox, list_command(sandbox, f"t-{i}")) for i in range(24))
            )
            assert statuses == [200] * 24
            # the edge stays busy, and processing goes on all the same
            await eventually(lambda: _at_least(sandbox, 24), timeout=30)
    started = starts[1:]  # the first may have started before the edge turned busy
    assert len(started) >= 20, started
    gaps = [later - earlier for earlier, later in itertools.pairwise(started)]
    assert min(gaps) >= processor.busy_gap, gaps
    await eventually(lambda: _at_least(sandbox, 25), timeout=30)


async def test_an_idle_edge_runs_recorded_commands_at_full_concurrency(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    processor = sandbox.bot.interactions
    edge = sandbox.bot.edge
    assert processor is not None and edge is not None
    assert not edge.busy() and processor.free() == processor.concurrency
    async with slow_request(http, sandbox):
        processor.last_start = time.monotonic()
        assert processor.free() == 0  # one started just now
        processor.last_start -= processor.busy_gap
        assert processor.free() == 1
    # Slack has its answer; a burst's next request may be a moment away, so the edge counts
    # as busy a little longer, then recorded commands start at full concurrency again
    assert time.monotonic() - edge.last_answer < 1
    await eventually(lambda: _idle(edge), timeout=1)
    assert time.monotonic() - edge.last_answer >= QUIET_SECONDS
    # the slow command itself may have started by now: every other slot is free at once
    running = len(processor.running)
    assert running <= 1 and processor.free() == processor.concurrency - running


async def _idle(edge: SlackEdge) -> bool:
    return not edge.busy()


async def _at_least(sandbox: Sandbox, count: int) -> bool:
    return await processed(sandbox) >= count
