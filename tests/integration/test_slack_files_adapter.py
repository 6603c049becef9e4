"""integrations/slack_files.py against the Slack stand-in: the three-step upload, retries on
429 and 5xx (the bot's bounded retry handlers), the timeout and clear errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import ExternalError
from bot.sandbox.slack import SlackStandIn, SlackUser
from integrations.slack import build_web_client, retry_handlers
from integrations.slack_files import SlackFiles

TOKEN = "xoxb-sandbox-token"
PNG = b"\x89PNG\r\n\x1a\n" + b"chart" * 100


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    stand_in = SlackStandIn(
        bot_token=TOKEN,
        users=[SlackUser("U1", "alice")],
        usergroups={},
        channels={"C1": "ml-fraud"},
    )
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


def files(slack: SlackStandIn, *, timeout: float = 10.0) -> SlackFiles:
    handlers = retry_handlers(backoff=0.01, jitter=0.0)
    client = build_web_client(
        TOKEN, base_url=slack.base_url, timeout=5, metrics=None, handlers=handlers
    )
    return SlackFiles(client, timeout=timeout)


async def test_upload_file_shares_the_bytes_by_channel_name(slack: SlackStandIn) -> None:
    file_id = await files(slack).upload_file(
        "#ml-fraud", "digest.png", PNG, "Daily digest", "fraud prod: digest"
    )
    assert slack.files.data(file_id) == PNG
    message = slack.messages[-1]
    assert message.channel == "C1" and message.text == "fraud prod: digest"
    assert message.files is not None and message.files[0]["title"] == "Daily digest"


async def test_upload_file_into_a_thread(slack: SlackStandIn) -> None:
    root = await AsyncWebClient(token=TOKEN, base_url=slack.base_url).chat_postMessage(
        channel="C1", text="incident"
    )
    await files(slack).upload_file("C1", "d.png", PNG, "t", "c", thread_ts=root["ts"])
    assert slack.messages[-1].thread_ts == root["ts"]


async def test_429_then_success_on_each_step(slack: SlackStandIn) -> None:
    slack.fail("files.getUploadURLExternal", status=429, retry_after=0)
    slack.fail("upload", status=503)
    slack.fail("files.completeUploadExternal", status=429, retry_after=0)
    file_id = await files(slack).upload_file("C1", "digest.png", PNG, "Digest", "digest")
    assert slack.files.data(file_id) == PNG
    statuses = [(c.method, c.status) for c in slack.calls]
    assert statuses == [
        ("files.getUploadURLExternal", 429),
        ("files.getUploadURLExternal", 200),
        ("upload", 503),
        ("upload", 200),
        ("files.completeUploadExternal", 429),
        ("files.completeUploadExternal", 200),
    ]
    assert len([m for m in slack.messages if m.files]) == 1


async def test_retries_are_bounded_and_the_error_is_clear(slack: SlackStandIn) -> None:
    slack.fail("files.getUploadURLExternal", status=500, times=10)
    with pytest.raises(ExternalError, match=r"digest\.png to C1 failed: internal_error"):
        await files(slack).upload_file("C1", "digest.png", PNG, "Digest", "digest")
    assert len(slack.calls_to("files.getUploadURLExternal")) == 3  # 1 + 2 retries on 5xx


async def test_slack_errors_and_unknown_channels_are_named(slack: SlackStandIn) -> None:
    slack.workspace.outside.add("C1")
    with pytest.raises(ExternalError, match="failed: not_in_channel"):
        await files(slack).upload_file("C1", "digest.png", PNG, "Digest", "digest")
    with pytest.raises(ExternalError, match="#nowhere failed: channel_not_found"):
        await files(slack).upload_file("#nowhere", "digest.png", PNG, "Digest", "digest")


async def test_a_hanging_slack_times_out(slack: SlackStandIn) -> None:
    slack.outage("hang", "files.completeUploadExternal", seconds=5)
    with pytest.raises(ExternalError, match=r"timed out after 0\.5 s"):
        await files(slack, timeout=0.5).upload_file("C1", "digest.png", PNG, "Digest", "x")


async def test_empty_data_is_refused_before_any_call(slack: SlackStandIn) -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        await files(slack).upload_file("C1", "digest.png", b"", "Digest", "x")
    assert not slack.calls


async def test_find_file_finds_a_share_by_name_in_the_channels_history(slack: SlackStandIn) -> None:
    adapter = files(slack)
    before = time.time() - 1
    await adapter.upload_file("C1", "other.png", PNG, "Other", "other")
    shared = await adapter.upload_file("#ml-fraud", "digest.png", PNG, "Digest", "digest")
    await AsyncWebClient(token=TOKEN, base_url=slack.base_url).chat_postMessage(
        channel="C1", text="later talk"
    )
    assert await adapter.find_file("#ml-fraud", "digest.png", oldest=before) == shared
    assert await adapter.find_file("C1", "digest-2.png", oldest=before) is None
    assert await adapter.find_file("C1", "digest.png", oldest=time.time() + 60) is None
    assert len(slack.calls_to("files.completeUploadExternal")) == 2  # finding shares nothing


async def test_find_file_names_a_failing_history(slack: SlackStandIn) -> None:
    slack.fail("conversations.history", status=500, times=10)
    with pytest.raises(ExternalError, match=r"Slack history of C1 failed: .*internal_error"):
        await files(slack).find_file("C1", "digest.png", oldest=0)
