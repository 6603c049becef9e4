"""Slack down while the bot works: how long after Slack recovers is every card final?

    .venv/bin/python bench/slack_outage.py [--minutes 0.5] [--kinds 429,500,hang] [--seed 1]

For each kind of outage (429 with Retry-After, 500, calls that take effect and answer late),
the bot runs as `mlops-bot sandbox` runs it; a run is trained first, then Slack goes down and
a stg deploy is requested and a prod deploy opened (its approval card due). After ``--minutes``
Slack recovers; the bench prints the time from recovery until the outbox is empty (every card
shows its final state) and how many deploys stranded (still queued or running when Slack
came back: work must never wait on a post).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import time
from dataclasses import dataclass

import aiohttp

from bot.domain.deploys import DeployState
from bot.domain.runs import RunState
from bot.logs import configure_logging
from bot.sandbox.runner import Sandbox, running_sandbox

KINDS = ("429", "500", "hang")
WAIT_LIMIT = 120.0
"""No wait in this bench lasts longer; a card not final by then is reported, not awaited."""


@dataclass(frozen=True)
class Outcome:
    kind: str
    recovery_seconds: float | None
    stranded: int
    cards: int
    duplicates: int


async def until(check: object, limit: float = WAIT_LIMIT) -> bool:
    """Poll the async ``check`` until it holds (True) or ``limit`` seconds pass (False)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


async def one_outage(kind: str, minutes: float) -> Outcome:
    async with (
        running_sandbox() as sandbox,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
    ):
        console = sandbox.console(io.StringIO(), http)
        await console.execute("/train fraud ref=main")
        await until(lambda: run_done(sandbox))
        await console.execute("/deploy fraud stg")
        await until(lambda: deploy_in(sandbox, 1, DeployState.SUCCEEDED))
        sandbox.slack.outage(kind, seconds=30.0)
        started = time.monotonic()
        await console.execute("/deploy fraud stg")
        await console.execute("/deploy fraud prod")
        await until(lambda: settled_deploys(sandbox), limit=max(WAIT_LIMIT, minutes * 60))
        await asyncio.sleep(max(0.0, minutes * 60 - (time.monotonic() - started)))
        stranded = len(await moving_deploys(sandbox))
        sandbox.slack.recover()
        recovered = time.monotonic()
        final = await until(lambda: outbox_empty(sandbox))
        seconds = time.monotonic() - recovered if final else None
        keys = [m.metadata["event_payload"]["key"] for m in sandbox.slack.messages if m.metadata]
        return Outcome(kind, seconds, stranded, len(keys), len(keys) - len(set(keys)))


async def run_done(sandbox: Sandbox) -> bool:
    run = await sandbox.bot.store.runs.get(1)
    return run is not None and run.state == RunState.SUCCEEDED


async def deploy_in(sandbox: Sandbox, deploy_id: int, state: DeployState) -> bool:
    d = await sandbox.bot.store.deployments.get(deploy_id)
    return d is not None and d.state == state


async def moving_deploys(sandbox: Sandbox) -> list[int]:
    """Deploys still queued or running (a deploy that waits for approval is where it should be)."""
    moving = (DeployState.QUEUED, DeployState.RUNNING)
    found = [await sandbox.bot.store.deployments.get(i) for i in (1, 2, 3)]
    return [d.id for d in found if d is not None and d.state in moving]


async def settled_deploys(sandbox: Sandbox) -> bool:
    return not await moving_deploys(sandbox)


async def outbox_empty(sandbox: Sandbox) -> bool:
    return not await sandbox.bot.store.cards.pending(limit=1)


async def main(minutes: float, kinds: list[str], seed: int) -> list[Outcome]:
    configure_logging("error")
    random.seed(seed)  # the reconciler's backoff jitter
    outcomes = []
    print(f"Slack outage of {minutes:g} min per kind; time from recovery to every card final")
    for kind in kinds:
        outcome = await one_outage(kind, minutes)
        outcomes.append(outcome)
        shown = (
            "not final" if outcome.recovery_seconds is None else f"{outcome.recovery_seconds:.2f} s"
        )
        print(
            f"  {kind:>5}: {shown:>10}   cards {outcome.cards}, duplicates {outcome.duplicates}, "
            f"stranded deploys {outcome.stranded}"
        )
    return outcomes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=0.5, help="outage length")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: 429,500,hang")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.minutes, args.kinds.split(","), args.seed))
