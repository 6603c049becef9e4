"""A vote after a prompt's ``expires_at`` is refused at once, with a clear ephemeral reply, even
before the 15-second expiry loop has closed the prompt: deploy approvals and A/B raises, by
button and by reaction, through signed Slack requests into the sandboxed bot.

Time is moved the way the services take it: their injected clock. Set to exactly
``expires_at``, the expiry loop cannot close the prompt (it looks for ``expires_at < now``),
so a refusal there comes from the vote itself."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.domain.ab import AbState, ChangeState
from bot.domain.deploys import DeployState
from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox
from bot.sandbox.slack.state import Message
from tests.scenario.test_ab import approve, b_running, elbv2_weights, experiment
from tests.scenario.test_deploy import deploy_state, on_stg, replies_to


def at(moment: datetime) -> Clock:
    return lambda: moment


def card(sandbox: Sandbox, prefix: str) -> Message:
    found = [m for m in sandbox.slack.messages if m.text.startswith(prefix) and not m.ephemeral_to]
    assert len(found) == 1, [m.text for m in found]
    return found[0]


async def react_on(console: Console, message: Message, emoji: str) -> None:
    """A signed reaction_added event on ``message`` (which may have lost its buttons)."""
    body = {
        "token": "sandbox",
        "team_id": console.slack.workspace.team_id,
        "api_app_id": "A0SANDBOX",
        "type": "event_callback",
        "event": {
            "type": "reaction_added",
            "user": console.person.id,
            "reaction": emoji,
            "item_user": message.user,
            "item": {"type": "message", "channel": message.channel, "ts": message.ts},
            "event_ts": f"{time.time():.6f}",
        },
        "event_id": f"EvLATE{next(console.ids):06d}",
        "event_time": int(time.time()),
    }
    await console.send(json.dumps(body), content_type="application/json")
    await console.settle()


async def test_a_deploy_vote_at_expiry_is_refused_before_the_loop_closes_it(
    console: Console, sandbox: Sandbox
) -> None:
    store = sandbox.bot.store
    await on_stg(sandbox, console)
    await console.execute("/deploy fraud prod")
    await deploy_state(sandbox, 2, DeployState.AWAITING_APPROVAL)
    d = await store.deployments.get(2)
    assert d is not None and d.expires_at is not None
    sandbox.bot.deps.approvals.clock = at(d.expires_at)
    assert await store.deployments.expired(d.expires_at) == []  # the loop sees nothing yet

    await console.execute("as @bob")
    await console.execute("click Approve")

    reply = replies_to(sandbox, "U0BOB")[-1]
    assert "The approval of deploy #2 (fraud → prod) expired at" in reply
    assert "your vote was not counted" in reply and "/deploy fraud prod" in reply
    after = await store.deployments.get(2)
    assert after is not None and after.state == DeployState.EXPIRED and after.approvers == ()
    assert after.detail == "the approval expired after 60 minutes"
    await deploy_state(sandbox, 2, DeployState.EXPIRED)  # the card says so too

    # the card has lost its buttons; a reaction on it now is refused the same way
    await console.execute("as @carol")
    await react_on(console, card(sandbox, "fraud → prod #2"), "white_check_mark")
    assert "The approval of deploy #2 (fraud → prod) expired" in replies_to(sandbox, "U0CAROL")[-1]
    final = await store.deployments.get(2)
    assert final is not None and final.state == DeployState.EXPIRED and final.approvers == ()


async def test_a_late_reaction_on_an_open_deploy_prompt_is_refused(
    console: Console, sandbox: Sandbox
) -> None:
    store = sandbox.bot.store
    await on_stg(sandbox, console)
    await console.execute("/deploy fraud prod")
    await deploy_state(sandbox, 2, DeployState.AWAITING_APPROVAL)
    await console.execute("as @bob")
    await console.execute("react :white_check_mark:")  # in time: counts
    d = await store.deployments.get(2)
    assert d is not None and d.approvers == ("U0BOB",) and d.expires_at is not None
    sandbox.bot.deps.approvals.clock = at(d.expires_at + timedelta(minutes=1))

    await console.execute("as @carol")
    await console.execute("react :white_check_mark:")

    assert "The approval of deploy #2 (fraud → prod) expired" in replies_to(sandbox, "U0CAROL")[-1]
    after = await store.deployments.get(2)
    assert after is not None and after.state == DeployState.EXPIRED
    assert after.approvers == ("U0BOB",) and after.started_at is None  # never ran


async def test_an_ab_raise_vote_at_expiry_is_refused_before_the_loop_closes_it(
    console: Console, sandbox: Sandbox
) -> None:
    store = sandbox.bot.store
    await b_running(sandbox, console)
    await console.execute("/deploy fraud ab prod set 60")
    assert "needs 1 approval(s) (above 20%)" in replies_to(sandbox, "U0ALICE")[-1]
    change = await store.ab.pending(1)
    assert change is not None and change.expires_at is not None
    sandbox.bot.deps.ab.approvals.clock = at(change.expires_at)
    assert await store.ab.expired(change.expires_at) == []  # the loop sees nothing yet

    await approve(console, "bob")

    reply = replies_to(sandbox, "U0BOB")[-1]
    assert "The approval of moving B of fraud/prod to 60% expired at" in reply
    assert "your vote was not counted" in reply and "/deploy fraud ab prod set 60" in reply
    closed = await store.ab.change(change.id)
    assert closed is not None and closed.state == ChangeState.EXPIRED and closed.approvers == ()
    assert elbv2_weights(sandbox) == (90, 10)
    await experiment(sandbox, AbState.RUNNING, 10)

    # the prompt is gone from the card; a reaction on the card is refused the same way
    await console.execute("as @carol")
    await react_on(console, card(sandbox, "fraud/prod A/B #1"), "white_check_mark")
    assert "moving B of fraud/prod to 60% expired" in replies_to(sandbox, "U0CAROL")[-1]
    assert elbv2_weights(sandbox) == (90, 10)


async def test_a_late_reaction_on_an_open_ab_prompt_is_refused(
    console: Console, sandbox: Sandbox
) -> None:
    store = sandbox.bot.store
    await b_running(sandbox, console)
    await console.execute("/deploy fraud ab prod set 60")
    change = await store.ab.pending(1)
    assert change is not None and change.expires_at is not None
    later = change.expires_at + timedelta(minutes=5)
    sandbox.bot.deps.ab.approvals.clock = at(later)

    await console.execute("as @bob")
    await console.execute("react :white_check_mark:")

    assert "moving B of fraud/prod to 60% expired" in replies_to(sandbox, "U0BOB")[-1]
    closed = await store.ab.change(change.id)
    assert closed is not None and closed.state == ChangeState.EXPIRED
    assert elbv2_weights(sandbox) == (90, 10)
