"""/deploy <model> ab <env> end to end: signed commands, clicks and reactions through the
sandbox; ELBv2, CloudWatch, ECR and ECS on moto; B's deploys by the ecspresso stand-in."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot import app as bot_app
from bot.domain.ab import AbState, Experiment
from bot.domain.deploys import Deployment, DeployState
from bot.domain.runs import Run, RunState
from bot.ports import TrafficRoute
from bot.sandbox.console import Console
from bot.sandbox.fixtures.ab import put_metrics
from bot.sandbox.runner import Sandbox, running_sandbox, sample_config
from handlers import deploy_commands
from handlers.parsing import parse_deploy
from integrations.aws.alb import CloudWatchMetrics
from tests.helpers import eventually
from tests.moto_server import MotoServer

TIMEOUT = 40


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """The sample sandbox with a guard that reads every 0.1 s."""
    data = yaml.safe_load(sample_config().read_text())
    guard = data["models"]["fraud"]["environments"]["prod"]["ab"]["guard"]
    guard.update(interval_seconds=0.1, window_seconds=60)
    config = tmp_path / "bot.yaml"
    config.write_text(yaml.safe_dump(data))
    async with running_sandbox(config) as running:
        yield running


@pytest.fixture
async def console(sandbox: Sandbox) -> AsyncIterator[Console]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        yield sandbox.console(io.StringIO(), http)


def aws(sandbox: Sandbox) -> MotoServer:
    assert sandbox.aws is not None
    return sandbox.aws


def ab_config(sandbox: Sandbox) -> Any:
    ab = sandbox.bot.settings.models["fraud"].environments["prod"].ab
    assert ab is not None
    return ab


def elbv2_weights(sandbox: Sandbox) -> tuple[int, int]:
    """A's and B's weights straight from ELBv2."""
    ab = ab_config(sandbox)
    rule = aws(sandbox).client("elbv2").describe_rules(RuleArns=[ab.rule_arn])["Rules"][0]
    groups = {
        g["TargetGroupArn"]: g["Weight"]
        for g in rule["Actions"][0]["ForwardConfig"]["TargetGroups"]
    }
    return groups[ab.target_group_a], groups[ab.target_group_b]


def replies_to(sandbox: Sandbox, user: str) -> list[str]:
    return [m.text for m in sandbox.slack.messages if m.ephemeral_to == user]


def ab_cards(sandbox: Sandbox) -> list[Any]:
    return [m for m in sandbox.slack.messages if m.text.startswith("fraud/prod A/B #")]


def card_text(sandbox: Sandbox) -> str:
    cards = ab_cards(sandbox)
    assert len(cards) == 1, [c.text for c in cards]
    return json.dumps(cards[0].blocks, ensure_ascii=False)


async def experiment(sandbox: Sandbox, state: AbState, share: int | None = None) -> Experiment:
    """Wait until the experiment is in ``state`` (with B at ``share``) and its card shows it."""
    found: list[Experiment] = []

    async def reached() -> bool:
        e = await sandbox.bot.store.ab.get(1)
        if e is None or e.state != state or (share is not None and e.b_share != share):
            return False
        await sandbox.bot.notifier.flush()
        found.append(e)
        return any(
            c.text == f"fraud/prod A/B #1: {state}, B {e.b_share}%" for c in ab_cards(sandbox)
        )

    await eventually(reached, timeout=TIMEOUT)
    return found[-1]


async def deploy_state(sandbox: Sandbox, deploy_id: int, state: DeployState) -> None:
    async def reached() -> bool:
        d = await sandbox.bot.store.deployments.get(deploy_id)
        return d is not None and d.state == state

    await eventually(reached, timeout=TIMEOUT)


async def on_stg(sandbox: Sandbox, console: Console) -> None:
    """Run #1 trained (gate passed) and deployed to stg (deploy #1), through the bot."""
    await console.execute("/train fraud ref=main")

    async def trained() -> bool:
        run = await sandbox.bot.store.runs.get(1)
        return run is not None and run.state == RunState.SUCCEEDED and run.verdict is not None

    await eventually(trained, timeout=20)
    await console.execute("/deploy fraud stg")
    await deploy_state(sandbox, 1, DeployState.SUCCEEDED)


async def seeded(sandbox: Sandbox, console: Console) -> None:
    """What on_stg leaves in the store (run #1, stg deploy #1 of its image), written directly:
    the A/B tests start from there without waiting for a pipeline and a deploy."""
    store, now = sandbox.bot.store, datetime.now(UTC)
    sha = sandbox.gitlab.state.project("ml/fraud").resolve(None)
    ecr = aws(sandbox).client("ecr")
    found = ecr.describe_images(repositoryName="fraud", imageIds=[{"imageTag": sha}])
    digest = found["imageDetails"][0]["imageDigest"]
    run = await store.runs.create(
        Run(
            0, "fraud", "gitlab", RunState.SUCCEEDED, "U0ALICE", "main", now, sha=sha,
            metrics={"accuracy": 0.9312, "f1": 0.8875}, verdict={"passed": True},
        )
    )  # fmt: skip
    await store.deployments.create(
        Deployment(
            0, "fraud", "stg", "deploy", DeployState.SUCCEEDED, "U0ALICE", now, sha, digest,
            run_id=run.id, sha=sha, ref="main", revision=2,
        )
    )  # fmt: skip


async def approve(console: Console, *people: str) -> None:
    for person in people:
        await console.execute(f"as @{person}")
        await console.execute("click Approve")
    await console.execute("as @alice")


async def b_running(sandbox: Sandbox, console: Console, weight: int = 10) -> Experiment:
    """A/B #1 with run #1 deployed to B (deploy #2, approved by bob and carol)."""
    await seeded(sandbox, console)
    await console.execute(f"/deploy fraud ab prod start run=1 weight={weight}")
    await approve(console, "bob", "carol")
    return await experiment(sandbox, AbState.RUNNING, weight)


async def test_start_deploys_b_through_the_deploy_flow_then_moves_the_weight(
    console: Console, sandbox: Sandbox
) -> None:
    await on_stg(sandbox, console)
    await console.execute("/deploy fraud ab prod start run=1 weight=10")

    assert (
        "A/B #1 on *fraud/prod*: run #1 goes to B (prod-b) as deploy #2"
        in (replies_to(sandbox, "U0ALICE")[-1])
    )
    b_deploy = await sandbox.bot.store.deployments.get(2)
    assert b_deploy is not None and b_deploy.env == "prod-b"
    assert b_deploy.state == DeployState.AWAITING_APPROVAL
    await experiment(sandbox, AbState.DEPLOYING, 0)
    assert elbv2_weights(sandbox) == (100, 0)

    await approve(console, "bob", "carol")
    e = await experiment(sandbox, AbState.RUNNING, 10)

    assert elbv2_weights(sandbox) == (90, 10) == (e.weight_a, e.weight_b)
    stg = await sandbox.bot.store.deployments.get(1)
    services = sandbox.bot.deps.reports.services
    assert stg is not None and services is not None
    b = await services.state("ml-prod", "fraud-api-b")
    assert await services.image_digests(b.images) == (stg.digest,) == (e.digest_b,)
    text = card_text(sandbox)
    assert "A 90% · B 10% (ELBv2 weights 90/10)" in text
    assert "run #1 (`main`; accuracy 0.9312" in text
    assert "verified on ECS" in text and "<@U0ALICE> started B 0% → 10%" in text


async def test_raising_b_above_the_share_needs_an_approver(
    console: Console, sandbox: Sandbox
) -> None:
    await b_running(sandbox, console)
    await console.execute("/deploy fraud ab prod set 20")
    assert "B now gets 20% of *fraud/prod*" in replies_to(sandbox, "U0ALICE")[-1]
    assert elbv2_weights(sandbox) == (80, 20)

    await console.execute("/deploy fraud ab prod set 50")
    assert "needs 1 approval(s) (above 20%)" in replies_to(sandbox, "U0ALICE")[-1]
    await sandbox.bot.notifier.flush()
    assert "asks to move B from 20% to *50%*" in card_text(sandbox)
    assert elbv2_weights(sandbox) == (80, 20)
    await console.execute("click Approve")
    assert "another approver has to decide" in replies_to(sandbox, "U0ALICE")[-1]
    await console.execute("as @dave")
    await console.execute("click Approve")
    assert "is not an approver for prod" in replies_to(sandbox, "U0DAVE")[-1]
    assert elbv2_weights(sandbox) == (80, 20)

    await console.execute("as @bob")
    await console.execute("react :white_check_mark:")
    assert elbv2_weights(sandbox) == (50, 50)
    await experiment(sandbox, AbState.RUNNING, 50)
    assert "<@U0ALICE> set B 20% → 50%" in card_text(sandbox)
    assert "approved by <@U0BOB>" in card_text(sandbox)

    await console.execute("as @alice")
    await console.execute("/deploy fraud ab prod set 5")
    assert elbv2_weights(sandbox) == (95, 5)


async def test_a_start_above_the_share_waits_for_an_approver_after_the_deploy(
    console: Console, sandbox: Sandbox
) -> None:
    await seeded(sandbox, console)
    await console.execute("/deploy fraud ab prod start run=1 weight=40")
    await approve(console, "bob", "carol")
    await experiment(sandbox, AbState.RUNNING, 0)

    async def prompted() -> bool:
        await sandbox.bot.notifier.flush()
        return "asks to move B from 0% to *40%*" in card_text(sandbox)

    await eventually(prompted, timeout=TIMEOUT)
    assert elbv2_weights(sandbox) == (100, 0)
    await approve(console, "carol")
    await experiment(sandbox, AbState.RUNNING, 40)
    assert elbv2_weights(sandbox) == (60, 40)


async def test_a_rejected_raise_leaves_the_split(console: Console, sandbox: Sandbox) -> None:
    await b_running(sandbox, console)
    await console.execute("/deploy fraud ab prod set 60")
    await console.execute("as @carol")
    await console.execute("click Reject")
    assert (
        "You rejected moving B of fraud/prod to 60%; it is rejected."
        in (replies_to(sandbox, "U0CAROL")[-1])
    )
    await sandbox.bot.notifier.flush()
    assert elbv2_weights(sandbox) == (90, 10)
    assert "B 10% → 60%: rejected by <@U0CAROL> · rejected" in card_text(sandbox)


async def test_a_rejected_b_deploy_ends_the_experiment_without_traffic(
    console: Console, sandbox: Sandbox
) -> None:
    await seeded(sandbox, console)
    await console.execute("/deploy fraud ab prod start run=1")
    await console.execute("as @bob")
    await console.execute("click Reject")
    e = await experiment(sandbox, AbState.FAILED, 0)

    assert e.detail.startswith("B's deploy #2 rejected") and elbv2_weights(sandbox) == (100, 0)
    assert "finished" not in card_text(sandbox) and "· failed" in card_text(sandbox)


async def test_a_lock_or_freeze_holds_the_split_but_never_an_abort(
    console: Console, sandbox: Sandbox
) -> None:
    await b_running(sandbox, console)
    await console.execute("as @eve")
    await console.execute('/deploy fraud lock prod reason="incident"')
    await console.execute("as @alice")
    await console.execute("/deploy fraud ab prod set 15")
    assert "fraud/prod is locked by <@U0EVE>: incident" in replies_to(sandbox, "U0ALICE")[-1]
    await console.execute("as @eve")
    await console.execute('/deploy freeze reason="release"')
    await console.execute("/deploy fraud ab prod set 15")
    assert "deploys are frozen by <@U0EVE>" in replies_to(sandbox, "U0EVE")[-1]
    assert elbv2_weights(sandbox) == (90, 10)

    await console.execute("as @alice")
    await console.execute("/deploy fraud ab prod abort")
    assert elbv2_weights(sandbox) == (100, 0)


async def test_promote_ships_b_to_a_and_returns_all_traffic(
    console: Console, sandbox: Sandbox
) -> None:
    e = await b_running(sandbox, console)
    await console.execute("/deploy fraud ab prod promote")
    assert "deploy #3 ships" in replies_to(sandbox, "U0ALICE")[-1]
    await experiment(sandbox, AbState.PROMOTING)
    assert elbv2_weights(sandbox) == (90, 10)

    await approve(console, "bob", "carol")
    await deploy_state(sandbox, 3, DeployState.SUCCEEDED)
    done = await experiment(sandbox, AbState.PROMOTED, 0)

    assert elbv2_weights(sandbox) == (100, 0)
    services = sandbox.bot.deps.reports.services
    assert services is not None
    a = await services.state("ml-prod", "fraud-api")
    assert await services.image_digests(a.images) == (e.digest_b,)
    assert done.run_a == 1 and done.image_a == e.image_b
    assert any("A/B #1 on *fraud/prod* promoted" in m.text for m in sandbox.slack.messages)


async def test_abort_puts_all_traffic_on_a_at_once_and_is_announced(
    console: Console, sandbox: Sandbox
) -> None:
    await b_running(sandbox, console, weight=20)
    await console.execute("/deploy fraud ab prod abort")

    assert elbv2_weights(sandbox) == (100, 0)
    await experiment(sandbox, AbState.ABORTED, 0)
    announced = [m.text for m in sandbox.slack.messages if m.channel == "C0FRAUD"]
    assert any(
        "<@U0ALICE> aborted A/B #1 on *fraud/prod*: all traffic is on A" in t for t in announced
    )
    assert "aborted B 20% → 0%" in card_text(sandbox)


async def test_the_guard_trips_on_bad_cloudwatch_data_and_reverts(
    console: Console, sandbox: Sandbox
) -> None:
    await b_running(sandbox, console, weight=20)
    await console.execute("metrics fraud prod healthy")

    async def read() -> bool:
        e = await sandbox.bot.store.ab.get(1)
        return e is not None and len(e.readings) == 3 and e.breaches == 0

    await eventually(read, timeout=TIMEOUT)
    await console.execute("metrics fraud prod b-errors")
    e = await experiment(sandbox, AbState.ABORTED, 0)

    assert elbv2_weights(sandbox) == (100, 0)
    assert e.breaches == 3 and e.detail.startswith("3 breaches in a row: 5xx rate")
    text = card_text(sandbox)
    assert '"text": ":red_circle: *fraud/prod · A/B #1* — aborted' in text
    assert ":red_circle: 5xx rate: A 0.00% · B 10.00%" in text

    def announced() -> list[str]:
        return [m.text for m in sandbox.slack.messages if "the guard aborted A/B #1" in m.text]

    await sandbox.slack.wait_for(lambda: bool(announced()), timeout=TIMEOUT)
    await sandbox.bot.notifier.flush()
    assert len(announced()) == 1 and announced()[0].startswith(":red_circle: <@U0ALICE>")
    audit = await sandbox.bot.store.audit_events(model="fraud")
    assert [a.actor for a in audit if a.action == "ab.guard_abort"] == ["guard"]


async def test_the_guard_resumes_after_a_restart(console: Console, sandbox: Sandbox) -> None:
    await b_running(sandbox, console, weight=20)
    await sandbox.bot.supervisor.stop()  # the first bot's guard is gone
    await sandbox.bot.store.ab.update(1, breaches=2, checked_at=None)
    put_metrics(aws(sandbox).client("cloudwatch"), ab_config(sandbox), "b-errors")
    card = ab_cards(sandbox)[0]

    again = await bot_app.build(sandbox.bot.settings)
    outbox = dict(again.followers)["slack-outbox"]  # the new bot's Slack outbox, unstarted
    sending = asyncio.create_task(outbox())
    try:
        assert again.ab_guard is not None
        await again.ab_guard.round()  # one reading: the third breach in a row
        await again.notifier.flush()
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        await bot_app.stop(again)

    e = await sandbox.bot.store.ab.get(1)
    assert e is not None and e.state == AbState.ABORTED and e.breaches == 3
    assert elbv2_weights(sandbox) == (100, 0)
    assert ab_cards(sandbox) == [card] and card.text == "fraud/prod A/B #1: aborted, B 0%"


async def test_a_blind_guard_says_so_on_the_card(console: Console, sandbox: Sandbox) -> None:
    await b_running(sandbox, console, weight=20)
    guard = sandbox.bot.ab_guard
    assert guard is not None
    working = guard.metrics
    dead = MotoServer(endpoint_url="http://127.0.0.1:9").client("cloudwatch")
    guard.metrics = CloudWatchMetrics(dead)

    async def blind() -> bool:
        await sandbox.bot.notifier.flush()
        return "the guard cannot read its metrics: CloudWatch did not answer" in card_text(sandbox)

    def warned() -> list[str]:
        return [m.text for m in sandbox.slack.messages if m.thread_ts and "cannot read" in m.text]

    async def warned_once() -> bool:
        return len(warned()) == 1

    await eventually(blind, timeout=TIMEOUT)
    await eventually(warned_once, timeout=TIMEOUT)
    assert warned()[0].startswith(":warning: <@U0ALICE> the A/B guard of fraud/prod cannot")
    e = await sandbox.bot.store.ab.get(1)
    assert e is not None and e.state == AbState.RUNNING and e.breaches == 0

    guard.metrics = working

    async def seeing() -> bool:
        await sandbox.bot.notifier.flush()
        return "cannot read" not in card_text(sandbox)

    await eventually(seeing, timeout=TIMEOUT)


async def test_status_reads_the_split_from_elbv2(console: Console, sandbox: Sandbox) -> None:
    await b_running(sandbox, console)
    ab = ab_config(sandbox)
    traffic = sandbox.bot.deps.ab.weights.elbv2()
    await traffic.set_split(
        TrafficRoute(ab.target_group_a, ab.target_group_b, rule_arn=ab.rule_arn), 75, 25
    )  # changed behind the bot's back
    await console.execute("as @dave")
    await console.execute("/deploy fraud ab prod status")
    status = json.dumps(sandbox.slack.messages[-1].blocks, ensure_ascii=False)
    assert "traffic (ELBv2): A 75% · B 25% (weights 75/25)" in status
    assert "fraud-api-b revision 2" in status and "experiment #1 running" in status
    await console.execute("/deploy fraud status")
    overall = json.dumps(sandbox.slack.messages[-1].blocks, ensure_ascii=False)
    assert "A/B: A 75% · B 25% (A/B #1 running)" in overall


async def test_bad_requests_change_nothing(console: Console, sandbox: Sandbox) -> None:
    await seeded(sandbox, console)
    lines = {
        "/deploy fraud ab stg start run=1": "fraud/stg has no A/B setup",
        "/deploy fraud ab prod start run=99": "fraud has no run #99",
        "/deploy fraud ab prod set 150": "Invalid weight `150`; expected 0 to 100",
        "/deploy fraud ab prod start run=1 weight=-5": "Invalid weight",
        "/deploy fraud ab prod set 30": "no A/B experiment runs on fraud/prod",
        "/deploy fraud ab prod promote": "no A/B experiment runs on fraud/prod",
    }
    for line, error in lines.items():
        await console.execute(line)
        assert error in replies_to(sandbox, "U0ALICE")[-1], line
    await console.execute("as @dave")
    await console.execute("/deploy fraud ab prod abort")
    assert "needs the deployer role on fraud/prod" in replies_to(sandbox, "U0DAVE")[-1]

    assert await sandbox.bot.store.ab.active() == []
    assert [d.id for d in await sandbox.bot.store.deployments.history("fraud")] == [1]
    assert elbv2_weights(sandbox) == (100, 0) and ab_cards(sandbox) == []


async def test_a_replayed_start_or_promote_opens_one_deploy(
    console: Console, sandbox: Sandbox
) -> None:
    """A restart runs a recorded command again with its delivery's key: the experiment and
    the deploy its first pass opened are found, not opened twice (issue 12)."""
    await seeded(sandbox, console)
    deps = sandbox.bot.deps
    start = parse_deploy("fraud ab prod start run=1 weight=10", deps.catalog)
    first = await deploy_commands.dispatch(deps, "U0ALICE", start, "delivery-start")
    again = await deploy_commands.dispatch(deps, "U0ALICE", start, "delivery-start")
    assert first == again and first is not None and "as deploy #2" in str(first)
    await approve(console, "bob", "carol")
    await experiment(sandbox, AbState.RUNNING, 10)

    promote = parse_deploy("fraud ab prod promote", deps.catalog)
    shipped = await deploy_commands.dispatch(deps, "U0ALICE", promote, "delivery-promote")
    replayed = await deploy_commands.dispatch(deps, "U0ALICE", promote, "delivery-promote")
    assert shipped == replayed and "deploy #3 ships" in str(shipped)
    prod = await sandbox.bot.store.deployments.history("fraud", "prod", limit=10)
    assert [d.id for d in prod] == [3]
    assert len(await sandbox.bot.store.ab.active("fraud", "prod")) == 1
