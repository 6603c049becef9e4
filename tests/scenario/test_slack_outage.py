"""Slack down (429, 500, hanging) while the bot works: signed requests in, the stand-in steered.

Work never waits on a post: deploys start and finish during the outage, and every card catches
up from the store's outbox once Slack is back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.domain.deploys import DeployState
from bot.domain.runs import RunState
from bot.reconciler import card_metadata
from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox
from tests.helpers import eventually
from tests.scenario.test_deploy import card_of, deploy_state, on_stg, trained


async def in_store(sandbox: Sandbox, deploy_id: int, state: DeployState) -> None:
    async def reached() -> bool:
        d = await sandbox.bot.store.deployments.get(deploy_id)
        return d is not None and d.state == state

    await eventually(reached, timeout=40)


def cards_of(sandbox: Sandbox, key: str) -> int:
    return sum(m.metadata == card_metadata(key) for m in sandbox.slack.messages)


async def test_a_deploy_runs_while_slack_fails_and_its_card_ends_final(
    console: Console, sandbox: Sandbox
) -> None:
    await trained(sandbox, console)
    sandbox.slack.outage("500")
    await console.execute("/deploy fraud stg")
    await in_store(sandbox, 1, DeployState.SUCCEEDED)  # started and finished with Slack down
    assert cards_of(sandbox, "deploy:1") == 0
    sandbox.slack.recover()
    await deploy_state(sandbox, 1, DeployState.SUCCEEDED)
    assert cards_of(sandbox, "deploy:1") == 1


async def test_an_approval_card_is_posted_once_slack_is_back_and_its_buttons_work(
    console: Console, sandbox: Sandbox
) -> None:
    await on_stg(sandbox, console)
    sandbox.slack.outage("429")
    await console.execute("/deploy fraud prod")
    await in_store(sandbox, 2, DeployState.AWAITING_APPROVAL)
    sandbox.slack.recover()
    await deploy_state(sandbox, 2, DeployState.AWAITING_APPROVAL)
    assert "Approve" in card_of(sandbox, 2)
    for person in ("@bob", "@carol"):
        await console.execute(f"as {person}")
        await console.execute("click Approve")
    await deploy_state(sandbox, 2, DeployState.SUCCEEDED)
    assert cards_of(sandbox, "deploy:2") == 1


async def test_a_run_card_ends_final_after_slack_hung(console: Console, sandbox: Sandbox) -> None:
    await console.execute("/deploy fraud history stg")  # bolt has met Slack once
    sandbox.slack.outage("hang", "chat.postMessage", seconds=60)
    sandbox.slack.outage("hang", "chat.update", seconds=60)
    await console.execute("/train fraud ref=main")

    async def finished() -> bool:
        run = await sandbox.bot.store.runs.get(1)
        return run is not None and run.state == RunState.SUCCEEDED and run.verdict is not None

    await eventually(finished, timeout=30)
    sandbox.slack.recover()

    async def card_final() -> bool:
        await sandbox.bot.notifier.flush()
        return not await sandbox.bot.store.cards.pending()

    await eventually(card_final, timeout=40)
    assert cards_of(sandbox, "run:1") == 1


async def test_a_post_lost_in_a_restart_is_found_not_repeated(
    console: Console, sandbox: Sandbox
) -> None:
    await trained(sandbox, console)
    sandbox.slack.outage("hang", "chat.postMessage", seconds=60)
    await console.execute("/deploy fraud stg")

    async def posted() -> bool:
        return cards_of(sandbox, "deploy:1") == 1

    await eventually(posted, timeout=20)  # Slack has the card; the bot has not heard back
    await sandbox.restart()
    sandbox.slack.recover()
    await deploy_state(sandbox, 1, DeployState.SUCCEEDED)
    assert cards_of(sandbox, "deploy:1") == 1


def test_the_outage_bench_runs_a_short_seeded_sample_and_exits() -> None:
    root = Path(__file__).resolve().parents[2]
    sample = ["--minutes", "0.02", "--kinds", "500,hang", "--seed", "3"]
    done = subprocess.run(
        [sys.executable, "bench/slack_outage.py", *sample],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    lines = done.stdout.splitlines()[1:]
    assert [line.split(":")[0].strip() for line in lines] == ["500", "hang"]
    for line in lines:
        assert "not final" not in line and "duplicates 0" in line and "stranded deploys 0" in line
