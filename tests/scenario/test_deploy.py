"""/deploy end to end: signed commands and clicks, moto's ECR and ECS, the ecspresso stand-in."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
import yaml

from bot.domain.deploys import DeployState
from bot.domain.runs import RunState
from bot.errors import Conflict
from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox, running_sandbox, sample_config
from tests.helpers import eventually


def replies_to(sandbox: Sandbox, user: str) -> list[str]:
    return [m.text for m in sandbox.slack.messages if m.ephemeral_to == user]


async def deploy_state(sandbox: Sandbox, deploy_id: int, *states: DeployState) -> None:
    """Wait until the deploy is in one of ``states`` and its card shows it."""

    async def reached() -> bool:
        d = await sandbox.bot.store.deployments.get(deploy_id)
        if d is None or d.state not in states:
            return False
        await sandbox.bot.notifier.flush()
        return any(
            m.text == f"{d.model} → {d.env} #{d.id}: {d.state}"
            for m in sandbox.slack.messages
            if not m.ephemeral_to
        )

    await eventually(reached, timeout=40)


async def trained(sandbox: Sandbox, console: Console) -> int:
    await console.execute("/train fraud ref=main")

    async def done() -> bool:
        run = await sandbox.bot.store.runs.get(1)
        return run is not None and run.state == RunState.SUCCEEDED and run.verdict is not None

    await eventually(done, timeout=20)
    return 1


async def on_stg(sandbox: Sandbox, console: Console) -> None:
    await trained(sandbox, console)
    await console.execute("/deploy fraud stg")
    await deploy_state(sandbox, 1, DeployState.SUCCEEDED)


def card_of(sandbox: Sandbox, deploy_id: int) -> str:
    texts = [
        json.dumps(m.blocks)
        for m in sandbox.slack.messages
        if m.text.startswith("fraud → ") and f"#{deploy_id}:" in m.text
    ]
    assert len(texts) == 1
    return texts[0]


async def test_stg_then_prod_with_two_distinct_approvers(
    console: Console, sandbox: Sandbox
) -> None:
    await on_stg(sandbox, console)
    stg = await sandbox.bot.store.deployments.get(1)
    assert stg is not None and stg.revision == 2 and stg.run_id == 1
    await console.execute("/deploy fraud prod")
    await deploy_state(sandbox, 2, DeployState.AWAITING_APPROVAL)
    assert "Approve" in card_of(sandbox, 2) and ":white_check_mark:" in card_of(sandbox, 2)
    await console.execute("click Approve")
    assert (
        "requested deploy #2; another approver has to decide" in replies_to(sandbox, "U0ALICE")[-1]
    )
    await console.execute("as @dave")
    await console.execute("click Approve")
    assert "is not an approver for prod" in replies_to(sandbox, "U0DAVE")[-1]
    await console.execute("as @bob")
    await console.execute("click Approve")
    await console.execute("click Approve")
    d = await sandbox.bot.store.deployments.get(2)
    assert d is not None and d.state == DeployState.AWAITING_APPROVAL and d.approvers == ("U0BOB",)
    await console.execute("as @carol")
    await console.execute("click Approve")
    await deploy_state(sandbox, 2, DeployState.SUCCEEDED)
    prod = await sandbox.bot.store.deployments.get(2)
    assert prod is not None and prod.digest == stg.digest
    assert set(prod.approvers) == {"U0BOB", "U0CAROL"}
    assert "revision 2 verified on ECS" in card_of(sandbox, 2)


async def test_prod_refuses_an_image_never_deployed_to_stg(
    console: Console, sandbox: Sandbox
) -> None:
    await trained(sandbox, console)
    await console.execute("/deploy fraud prod")
    assert "only takes an image that succeeded on stg" in replies_to(sandbox, "U0ALICE")[-1]
    assert await sandbox.bot.store.deployments.history("fraud") == []


async def test_reactions_approve_and_withdraw_and_reject(
    console: Console, sandbox: Sandbox
) -> None:
    await on_stg(sandbox, console)
    await console.execute("/deploy fraud prod")
    await console.execute("as @bob")
    await console.execute("react :white_check_mark:")
    d = await sandbox.bot.store.deployments.get(2)
    assert d is not None and d.approvers == ("U0BOB",)
    await console.execute("unreact :white_check_mark:")
    d = await sandbox.bot.store.deployments.get(2)
    assert d is not None and d.approvers == ()
    await console.execute("react :thumbsup:")
    await console.execute("as @carol")
    await console.execute("react :x:")
    await deploy_state(sandbox, 2, DeployState.REJECTED)
    assert "rejected by <@U0CAROL>" in card_of(sandbox, 2)


async def test_concurrent_approvals_start_one_deploy(console: Console, sandbox: Sandbox) -> None:
    await on_stg(sandbox, console)
    await console.execute("/deploy fraud prod")
    approvals = sandbox.bot.deps.approvals
    votes = [
        approvals.vote(user, 2, approve=True, via="button")
        for user in ("U0BOB", "U0CAROL", "U0BOB", "U0CAROL")
    ]
    await asyncio.gather(*votes, return_exceptions=True)
    await deploy_state(sandbox, 2, DeployState.SUCCEEDED)
    outputs = [
        m
        for m in sandbox.slack.messages
        if m.thread_ts and "ecspresso" in m.text and m.channel == "C0FRAUD"
    ]
    assert len(outputs) == 2  # one for stg, one for prod: prod ran exactly once


async def test_lock_and_freeze_are_respected(console: Console, sandbox: Sandbox) -> None:
    await trained(sandbox, console)
    await console.execute("as @eve")
    await console.execute('/deploy fraud lock stg reason="migration"')
    await console.execute("as @alice")
    await console.execute("/deploy fraud stg")
    assert "fraud/stg is locked by <@U0EVE>: migration" in replies_to(sandbox, "U0ALICE")[-1]
    await console.execute("as @eve")
    await console.execute("/deploy fraud unlock stg")
    await console.execute('/deploy freeze reason="quarter end"')
    await console.execute("as @alice")
    await console.execute("/deploy fraud stg")
    assert "deploys are frozen by <@U0EVE>" in replies_to(sandbox, "U0ALICE")[-1]
    await console.execute("as @eve")
    await console.execute('/deploy fraud stg run=1 force reason="hotfix"')
    await deploy_state(sandbox, 1, DeployState.SUCCEEDED)
    assert "forced" in card_of(sandbox, 1) and "hotfix" in card_of(sandbox, 1)
    audit = await sandbox.bot.store.audit_events(model="fraud")
    assert any(e.parameters.get("intent", {}).get("force_reason") == "hotfix" for e in audit)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("fail@deploy", "ecspresso failed (exited with 1"),
        ("lie", "ECS runs sha256:"),
        ("hang@deploy", "ecspresso timed out after 3s"),
    ],
)
async def test_a_failed_deploy_that_left_ecs_alone_turns_red_without_a_rollback(
    mode: str, reason: str, deploy_sandbox: tuple[Sandbox, Console]
) -> None:
    """None of these changed ECS, so there is nothing to roll back (a rollback after ECS
    changed: tests/scenario/test_deploy_verify.py)."""
    sandbox, console = deploy_sandbox
    await trained(sandbox, console)
    await console.execute(f"ecspresso {mode}")
    await console.execute("/deploy fraud stg")
    await deploy_state(sandbox, 1, DeployState.FAILED)
    await sandbox.slack.wait_for(
        lambda: any(m.thread_ts and "failed:" in m.text for m in sandbox.slack.messages)
    )
    card = card_of(sandbox, 1)
    assert reason in card and "<@U0ALICE>" in card
    assert "ECS unchanged (revision 1), nothing rolled back" in card
    assert sandbox.aws is not None
    ecs = sandbox.aws.client("ecs")
    service = ecs.describe_services(cluster="ml-stg", services=["fraud-api"])["services"][0]
    assert service["taskDefinition"].endswith(":1")
    notified = [m.text for m in sandbox.slack.messages if m.thread_ts and "failed:" in m.text]
    assert notified and notified[-1].startswith("<@U0ALICE> deploy #1")


@pytest.fixture
async def deploy_sandbox(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, Console]]:
    """The sandbox with ecspresso's timeout cut to 3 s (for the hang case)."""
    data = yaml.safe_load(sample_config().read_text())
    data["ecspresso"] = {"timeout_seconds": 3, "verify_seconds": 5}
    config = tmp_path / "bot.yaml"
    config.write_text(yaml.safe_dump(data))
    async with running_sandbox(config) as sandbox, aiohttp.ClientSession() as http:
        yield sandbox, sandbox.console(io.StringIO(), http)


async def test_rollback_to_an_earlier_deploy(console: Console, sandbox: Sandbox) -> None:
    await on_stg(sandbox, console)
    await console.execute("/deploy fraud stg image=v1")
    await deploy_state(sandbox, 2, DeployState.SUCCEEDED)
    await console.execute("/deploy fraud rollback stg to=1")
    await deploy_state(sandbox, 3, DeployState.SUCCEEDED)
    back = await sandbox.bot.store.deployments.get(3)
    first = await sandbox.bot.store.deployments.get(1)
    assert back is not None and first is not None
    assert back.kind == "rollback" and back.revision == first.revision
    assert any("rolls fraud/stg back to deploy #1" in m.text for m in sandbox.slack.messages)
    await console.execute("/deploy fraud history stg")
    history = json.dumps(sandbox.slack.messages[-1].blocks)
    assert "#3" in history and "rollback" in history and "#1" in history


async def test_approval_expires(console: Console, sandbox: Sandbox) -> None:
    await on_stg(sandbox, console)
    await console.execute("/deploy fraud prod")
    store = sandbox.bot.store.deployments
    d = await store.get(2)
    assert d is not None and d.expires_at is not None
    await store.update(2, expires_at=d.created_at)
    assert await sandbox.bot.deps.approvals.expire_due() == 1
    await deploy_state(sandbox, 2, DeployState.EXPIRED)
    assert "expired after 60 minutes" in card_of(sandbox, 2)
    with pytest.raises(Conflict, match=r"expired at .*; your vote was not counted"):
        await sandbox.bot.deps.approvals.vote("U0BOB", 2, approve=True, via="button")


async def test_pending_approval_survives_a_restart(console: Console, sandbox: Sandbox) -> None:
    await on_stg(sandbox, console)
    await console.execute("/deploy fraud prod")
    await deploy_state(sandbox, 2, DeployState.AWAITING_APPROVAL)
    await console.execute("as @bob")
    await console.execute("click Approve")
    await sandbox.restart()
    console.bot_url = sandbox.url
    await console.execute("as @carol")
    await console.execute("click Approve")
    await deploy_state(sandbox, 2, DeployState.SUCCEEDED)
    d = await sandbox.bot.store.deployments.get(2)
    assert d is not None and set(d.approvers) == {"U0BOB", "U0CAROL"}
    assert "revision 2 verified on ECS" in card_of(sandbox, 2)


async def test_a_deploy_in_flight_is_reattached_after_a_restart(
    console: Console, sandbox: Sandbox
) -> None:
    await on_stg(sandbox, console)
    stg = await sandbox.bot.store.deployments.get(1)
    assert stg is not None
    store = sandbox.bot.store.deployments
    inflight = await store.create(
        replace(
            stg, id=0, env="prod", state=DeployState.RUNNING, requester="U0ALICE", revision=None
        )
    )
    runner = sandbox.bot.deploy_runner
    assert runner is not None and runner.deployer is not None
    config = sandbox.stand_ins.deploy_root / "fraud" / "prod" / "ecspresso.yml"
    result = await runner.deployer.deploy(
        str(config), runner.ecspresso_env(inflight), lambda _: None
    )
    assert result.ok  # ECS moved while no bot was watching
    await sandbox.restart()
    await deploy_state(sandbox, inflight.id, DeployState.SUCCEEDED)
    done = await store.get(inflight.id)
    assert done is not None and done.revision == 2
