"""The notifier and the Slack client factory against the Slack stand-in, over real HTTP."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from bot.errors import ExternalError, NotFound
from bot.metrics import Metrics
from bot.notifier import Notifier
from bot.sandbox.slack import SlackStandIn, SlackUser
from integrations.slack import SlackDirectory, build_web_client, retry_handlers

TOKEN = "xoxb-notifier-secret"
INTERVAL = 0.3


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    stand_in = SlackStandIn(
        bot_token=TOKEN,
        users=[SlackUser("U1", "alice", "Alice Liddell"), SlackUser("U2", "bob")],
        usergroups={"S1": ["U1", "U2"]},
        channels={"C1": "ml-fraud"},
    )
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def notifier(slack: SlackStandIn, metrics: Metrics) -> AsyncIterator[Notifier]:
    client = build_web_client(
        TOKEN,
        base_url=slack.base_url,
        timeout=5,
        metrics=metrics,
        handlers=retry_handlers(backoff=0.01, jitter=0.01),
    )
    notifier = Notifier(client, edit_interval=INTERVAL, metrics=metrics)
    yield notifier
    await notifier.close()


def slack_calls(metrics: Metrics, method: str, result: str) -> float:
    labels = {"method": method, "result": result}
    return metrics.registry.get_sample_value("mlops_bot_slack_api_calls_total", labels) or 0.0


def errors(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("mlops_bot_errors_total", {"kind": "slack"}) or 0.0


async def test_post_returns_channel_id_and_ts(slack: SlackStandIn, notifier: Notifier) -> None:
    channel, ts = await notifier.post("#ml-fraud", "training started")
    assert (channel, ts) == ("C1", slack.messages[0].ts)
    assert slack.messages[0].text == "training started"


async def test_rapid_edits_coalesce_and_the_last_state_wins(
    slack: SlackStandIn, notifier: Notifier
) -> None:
    channel, ts = await notifier.post("C1", "step 0")
    for step in range(1, 21):
        notifier.edit(channel, ts, f"step {step}")
        await asyncio.sleep(0.01)
    await notifier.flush()
    updates = slack.calls_to("chat.update")
    assert 1 <= len(updates) <= 3
    assert updates[-1].args["text"] == "step 20" and slack.messages[0].text == "step 20"
    gaps = [b.at - a.at for a, b in itertools.pairwise(updates)]
    assert all(gap >= INTERVAL * 0.9 for gap in gaps)


async def test_edits_to_different_cards_are_independent(
    slack: SlackStandIn, notifier: Notifier
) -> None:
    first = await notifier.post("C1", "a0")
    second = await notifier.post("C1", "b0")
    notifier.edit(*first, "a1")
    notifier.edit(*second, "b1")
    await notifier.flush()
    assert [m.text for m in slack.messages] == ["a1", "b1"]
    first_at, second_at = (call.at for call in slack.calls_to("chat.update"))
    assert abs(second_at - first_at) < INTERVAL  # neither waited for the other's interval


async def test_edit_never_blocks_the_caller(slack: SlackStandIn, notifier: Notifier) -> None:
    card = await notifier.post("C1", "v0")
    slack.fail("chat.update", retry_after=0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n in range(50):
        notifier.edit(*card, f"v{n}")
    assert loop.time() - started < 0.05
    await notifier.flush()


async def test_a_429_on_update_is_waited_out_and_the_final_state_arrives(
    slack: SlackStandIn, notifier: Notifier, metrics: Metrics
) -> None:
    card = await notifier.post("C1", "v0")
    slack.fail("chat.update", status=429, retry_after=1)
    notifier.edit(*card, "v1")
    await asyncio.sleep(0.1)
    notifier.edit(*card, "v2")  # arrives while v1 is waiting out the rate limit
    await notifier.flush()
    limited, retried, final = slack.calls_to("chat.update")
    assert (limited.status, retried.status, final.status) == (429, 200, 200)
    assert retried.at - limited.at >= 1.0  # Retry-After honoured
    assert slack.messages[0].text == "v2"
    assert slack_calls(metrics, "chat.update", "ok") == 2 and errors(metrics) == 0


async def test_a_500_once_is_retried(
    slack: SlackStandIn, notifier: Notifier, metrics: Metrics
) -> None:
    slack.fail("chat.postMessage", status=500)
    await notifier.post("C1", "hello")
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [500, 200]
    assert slack_calls(metrics, "chat.postMessage", "ok") == 1


async def test_a_persistent_failure_is_logged_counted_and_never_raised_from_the_flusher(
    slack: SlackStandIn, notifier: Notifier, metrics: Metrics
) -> None:
    card = await notifier.post("C1", "v0")
    slack.fail("chat.update", status=500, times=3)
    notifier.edit(*card, "lost")
    await notifier.flush()
    assert [c.status for c in slack.calls_to("chat.update")] == [500, 500, 500]
    assert errors(metrics) == 1 and slack_calls(metrics, "chat.update", "internal_error") == 1
    await asyncio.sleep(INTERVAL)
    notifier.edit(*card, "back")
    await notifier.flush()
    assert slack.messages[0].text == "back"


async def test_post_failure_raises_external_error_without_the_token(
    notifier: Notifier, metrics: Metrics
) -> None:
    with pytest.raises(ExternalError) as caught:
        await notifier.post("#nowhere", "x")
    assert "channel_not_found" in str(caught.value) and TOKEN not in str(caught.value)
    assert slack_calls(metrics, "chat.postMessage", "channel_not_found") == 1
    assert errors(metrics) == 1


async def test_rate_limits_past_the_retry_bound_raise_external_error(
    slack: SlackStandIn, metrics: Metrics
) -> None:
    client = build_web_client(
        TOKEN,
        base_url=slack.base_url,
        timeout=5,
        metrics=metrics,
        handlers=retry_handlers(rate_limited=1),
    )
    slack.fail("chat.postEphemeral", retry_after=0, times=2)
    with pytest.raises(ExternalError, match="ratelimited"):
        await Notifier(client, metrics=metrics).ephemeral("C1", "U1", "x")
    assert len(slack.calls_to("chat.postEphemeral")) == 2
    assert slack_calls(metrics, "chat.postEphemeral", "ratelimited") == 1


async def test_connection_errors_are_retried_then_raised(
    slack: SlackStandIn, notifier: Notifier, metrics: Metrics
) -> None:
    await slack.stop()
    with pytest.raises(ExternalError, match="ClientConnectorError"):
        await notifier.post("C1", "x")
    assert slack_calls(metrics, "chat.postMessage", "connection_error") == 1


async def test_ephemeral_and_respond(slack: SlackStandIn, notifier: Notifier) -> None:
    await notifier.ephemeral("C1", "U2", "just you")
    url = slack.new_response_url(channel="C1", user="U1")
    await notifier.respond(url, "first")
    await notifier.respond(url, "replaced", replace_original=True)
    ephemeral, responded = slack.messages
    assert (ephemeral.ephemeral_to, ephemeral.text) == ("U2", "just you")
    assert (responded.ephemeral_to, responded.text, responded.edited) == ("U1", "replaced", 1)


async def test_responses_share_one_connection(slack: SlackStandIn, notifier: Notifier) -> None:
    url = slack.new_response_url(channel="C1", user="U1")
    for n in range(3):
        await notifier.respond(url, f"reply {n}", replace_original=True)
    assert len(slack.response_peers) == 3
    assert len(set(slack.response_peers)) == 1  # kept alive, not one connection a reply


async def test_respond_to_a_dead_url_raises(slack: SlackStandIn, notifier: Notifier) -> None:
    with pytest.raises(ExternalError, match="http_404"):
        await notifier.respond(slack.url + "/response/expired", "x")


async def test_directory_caches_until_the_ttl_passes(slack: SlackStandIn) -> None:
    now = [0.0]
    client = build_web_client(TOKEN, base_url=slack.base_url, timeout=5, metrics=None)
    directory = SlackDirectory(client, ttl=60, clock=lambda: now[0])
    assert await directory.group_members("S1") == frozenset({"U1", "U2"})
    assert await directory.user_name("U1") == "Alice Liddell"
    assert await directory.user_name("U2") == "bob"
    slack.workspace.usergroups["S1"].remove("U2")
    assert await directory.group_members("S1") == frozenset({"U1", "U2"})  # cached
    now[0] = 61
    assert await directory.group_members("S1") == frozenset({"U1"})
    assert len(slack.calls_to("usergroups.users.list")) == 2
    with pytest.raises(NotFound):
        await directory.group_members("S404")
