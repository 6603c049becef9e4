"""Signed Slack requests through the real endpoint: signatures, acks, retries, errors."""

from __future__ import annotations

import json
import time
import urllib.parse

import aiohttp

from bot.sandbox.console import Console
from bot.sandbox.people import SIGNING_SECRET
from bot.sandbox.runner import Sandbox
from bot.sandbox.signing import signed_headers
from bot.store import Store
from tests.helpers import eventually


def command_body(
    sandbox: Sandbox,
    text: str,
    *,
    user: str = "U0ALICE",
    trigger: str = "t-1",
    command: str = "/deploy",
) -> str:
    return urllib.parse.urlencode(
        {
            "team_id": "T0SANDBOX",
            "channel_id": "C0SANDBOX",
            "user_id": user,
            "command": command,
            "text": text,
            "trigger_id": trigger,
            "response_url": sandbox.slack.new_response_url(channel="C0SANDBOX", user=user),
        }
    )


async def post(
    http: aiohttp.ClientSession, sandbox: Sandbox, body: str, headers: dict[str, str]
) -> aiohttp.ClientResponse:
    async with http.post(
        f"{sandbox.url}/slack/events", data=body.encode(), headers=headers
    ) as response:
        await response.read()
        return response


def ephemerals(sandbox: Sandbox, user: str) -> list[str]:
    return [m.text for m in sandbox.slack.messages if m.ephemeral_to == user]


async def test_valid_command_is_acked_fast_and_posts_the_lock_card(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    body = command_body(sandbox, 'fraud lock prod reason="db migration"')
    started = time.perf_counter()
    response = await post(http, sandbox, body, signed_headers(SIGNING_SECRET, body))
    assert response.status == 200
    assert time.perf_counter() - started < 3.0  # Slack's own limit, not a benchmark
    await sandbox.slack.wait_for(lambda: bool(sandbox.slack.calls_to("chat.postMessage")))
    posted = sandbox.slack.calls_to("chat.postMessage")[0]
    assert posted.args["channel"] == "#ml-fraud"
    assert "db migration" in json.dumps(posted.args["blocks"])
    await sandbox.slack.wait_for(lambda: bool(ephemerals(sandbox, "U0ALICE")))
    assert "Locked *fraud/prod*" in ephemerals(sandbox, "U0ALICE")[0]


async def test_wrong_signature_is_refused(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    body = command_body(sandbox, "help")
    headers = signed_headers("not-the-secret", body)
    assert (await post(http, sandbox, body, headers)).status == 401
    assert sandbox.slack.messages == []


async def test_stale_timestamp_is_refused(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    body = command_body(sandbox, "help")
    headers = signed_headers(SIGNING_SECRET, body, timestamp=int(time.time()) - 6 * 60)
    assert (await post(http, sandbox, body, headers)).status == 401


async def test_retried_event_has_one_effect(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    body = command_body(sandbox, 'fraud lock stg reason="once"', trigger="same-trigger")
    for retry in ("", "1", "2"):
        headers = signed_headers(SIGNING_SECRET, body)
        if retry:
            headers |= {"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"}
        assert (await post(http, sandbox, body, headers)).status == 200
    await sandbox.slack.wait_for(lambda: bool(ephemerals(sandbox, "U0ALICE")))
    await sandbox.bot.notifier.flush()
    assert len(sandbox.slack.calls_to("chat.postMessage")) == 1
    assert len(ephemerals(sandbox, "U0ALICE")) == 1


async def test_repeated_reaction_event_id_is_audited_once(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    event = {
        "type": "event_callback",
        "team_id": "T0SANDBOX",
        "event_id": "Ev0001",
        "event": {
            "type": "reaction_added",
            "user": "U0BOB",
            "reaction": "eyes",
            "item": {"type": "message", "channel": "C0FRAUD", "ts": "1.2"},
        },
    }
    body = json.dumps(event)
    for retry in ("", "1"):
        headers = signed_headers(SIGNING_SECRET, body, content_type="application/json")
        if retry:
            headers["X-Slack-Retry-Num"] = retry
        assert (await post(http, sandbox, body, headers)).status == 200
    store = sandbox.bot.store

    async def reactions() -> int:
        return sum(e.action == "reaction.reaction_added" for e in await store.audit_events())

    await eventually(lambda: reactions_seen(store))
    assert await reactions() == 1


async def test_denial_says_which_role_is_needed(console: Console, sandbox: Sandbox) -> None:
    await console.execute("as @dave")
    await console.execute('/deploy fraud lock prod reason="mine"')
    replies = ephemerals(sandbox, "U0DAVE")
    assert len(replies) == 1
    assert "needs the deployer role on fraud/prod" in replies[0]
    assert "ref " in replies[0]
    assert await sandbox.bot.store.get_lock("fraud", "prod") is None
    events = await sandbox.bot.store.audit_events(model="fraud")
    assert [e.outcome for e in events] == ["denied"]


async def test_bad_text_gets_a_clear_error(console: Console, sandbox: Sandbox) -> None:
    await console.execute("/deploy frod stg")
    await console.execute("/train fraud gpus=lots")
    first, second = ephemerals(sandbox, "U0ALICE")
    assert "frod" in first and "churn" in first and "fraud" in first
    assert "gpus" in second


async def test_help_lists_every_subcommand(console: Console, sandbox: Sandbox) -> None:
    await console.execute("/deploy help")
    await console.execute("/train help")
    deploy_help, train_help = ephemerals(sandbox, "U0ALICE")
    for word in ("lock", "unlock", "freeze", "rollback", "history", "diff", "status", "ab"):
        assert word in deploy_help
    for word in ("status", "cancel", "logs", "list", "gpus"):
        assert word in train_help


async def reactions_seen(store: Store) -> bool:
    return any(e.action == "reaction.reaction_added" for e in await store.audit_events())


async def test_an_acked_command_survives_a_stop_before_it_ran(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    """Acked means recorded: the processor is stopped (as a crash right after the ack would
    leave it), the command is acked, and the next start runs it once and replies."""
    assert sandbox.bot.interactions is not None
    await sandbox.bot.interactions.stop(grace=0)
    body = command_body(sandbox, 'fraud lock stg reason="after restart"', trigger="t-crash")
    assert (await post(http, sandbox, body, signed_headers(SIGNING_SECRET, body))).status == 200
    assert await sandbox.bot.store.get_lock("fraud", "stg") is None
    assert (await sandbox.bot.store.interactions.counts()) == {"pending": 1}
    await sandbox.restart()
    await sandbox.slack.wait_for(lambda: bool(ephemerals(sandbox, "U0ALICE")))
    lock = await sandbox.bot.store.get_lock("fraud", "stg")
    assert lock is not None and lock.reason == "after restart"
    await eventually(lambda: processed(sandbox.bot.store))
    assert len(ephemerals(sandbox, "U0ALICE")) == 1


async def processed(store: Store) -> bool:
    return await store.interactions.counts() == {"processed": 1}
