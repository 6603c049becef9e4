"""The Slack stand-in's external upload flow held to Slack's documented shapes
(files.getUploadURLExternal, the POST to the upload URL, files.completeUploadExternal), driven
over HTTP and through slack_sdk's own ``files_upload_v2``."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.console import Console
from bot.sandbox.slack import SlackStandIn, SlackUser
from bot.sandbox.transcript import Transcript

TOKEN = "xoxb-sandbox-token"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    stand_in = SlackStandIn(
        bot_token=TOKEN,
        users=[SlackUser("U1", "alice")],
        usergroups={},
        channels={"C1": "ml-fraud", "C2": "ml-ops"},
    )
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
def client(slack: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=slack.base_url, retry_handlers=[])


async def call(
    http: aiohttp.ClientSession, slack: SlackStandIn, method: str, **form: Any
) -> dict[str, Any]:
    """A Web API call as a form POST with a bearer token, as Slack documents it."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with http.post(slack.base_url + method, data=form, headers=headers) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def announce(
    http: aiohttp.ClientSession, slack: SlackStandIn, data: bytes = PNG
) -> dict[str, Any]:
    body = await call(
        http, slack, "files.getUploadURLExternal", filename="chart.png", length=str(len(data))
    )
    assert body["ok"] is True, body
    return body


async def test_get_upload_url_answers_a_file_id_and_a_loopback_url(
    http: aiohttp.ClientSession, slack: SlackStandIn
) -> None:
    body = await announce(http, slack)
    assert set(body) == {"ok", "upload_url", "file_id"}
    assert re.fullmatch(r"F[0-9A-Z]{8,}", body["file_id"])
    assert body["upload_url"].startswith(f"{slack.url}/upload/v1/")


@pytest.mark.parametrize(
    ("form", "error", "message"),
    [
        ({"length": "10"}, "invalid_arguments", "missing required field: filename"),
        ({"filename": "a.png"}, "invalid_arguments", "missing required field: length"),
        ({"filename": "a.png", "length": "0"}, "invalid_arguments", "at least 1 byte"),
        ({"filename": "a.png", "length": "ten"}, "invalid_arguments", "whole number"),
        ({"filename": "a.png", "length": "9", "alt_txt": "x" * 1001}, "alt_txt_too_large", None),
    ],
)
async def test_get_upload_url_refuses_bad_arguments(
    http: aiohttp.ClientSession,
    slack: SlackStandIn,
    form: dict[str, str],
    error: str,
    message: str | None,
) -> None:
    body = await call(http, slack, "files.getUploadURLExternal", **form)
    assert body["ok"] is False and body["error"] == error
    if message is not None:
        assert message in body["response_metadata"]["messages"][0]


async def test_upload_then_complete_shares_the_file_as_a_message(
    http: aiohttp.ClientSession, slack: SlackStandIn
) -> None:
    root = await call(http, slack, "chat.postMessage", channel="C1", text="incident")
    started = await announce(http, slack)
    async with http.post(started["upload_url"], data=PNG) as response:
        assert response.status == 200 and await response.text() == f"OK - {len(PNG)}"
    files = json.dumps([{"id": started["file_id"], "title": "Daily digest"}])
    done = await call(
        http,
        slack,
        "files.completeUploadExternal",
        files=files,
        channel_id="C1",
        initial_comment="fraud, prod: daily digest",
        thread_ts=root["ts"],
    )
    assert done["ok"] is True and [f["id"] for f in done["files"]] == [started["file_id"]]
    shared = done["files"][0]
    assert shared["title"] == "Daily digest" and shared["name"] == "chart.png"
    assert shared["mimetype"] == "image/png" and shared["size"] == len(PNG)
    assert slack.files.data(started["file_id"]) == PNG
    message = slack.messages[-1]
    assert message.channel == "C1" and message.thread_ts == root["ts"]
    assert message.text == "fraud, prod: daily digest"
    assert message.files is not None and message.files[0]["id"] == started["file_id"]
    replies = await call(http, slack, "conversations.replies", channel="C1", ts=root["ts"])
    assert replies["messages"][-1]["files"][0]["id"] == started["file_id"]


async def test_multipart_upload_is_accepted(
    http: aiohttp.ClientSession, slack: SlackStandIn
) -> None:
    started = await announce(http, slack)
    form = aiohttp.FormData()
    form.add_field("filename", PNG, filename="chart.png", content_type="image/png")
    async with http.post(started["upload_url"], data=form) as response:
        assert response.status == 200
    assert slack.files.data(started["file_id"]) == PNG


async def test_length_mismatch_is_refused_and_the_file_never_completes(
    http: aiohttp.ClientSession, slack: SlackStandIn
) -> None:
    started = await announce(http, slack)
    async with http.post(started["upload_url"], data=PNG[:-1]) as response:
        assert response.status == 400 and "length mismatch" in await response.text()
    files = json.dumps([{"id": started["file_id"]}])
    done = await call(http, slack, "files.completeUploadExternal", files=files, channel_id="C1")
    assert done == {"ok": False, "error": "file_not_found"}
    assert not slack.messages


async def test_unknown_file_and_second_completion_are_file_not_found(
    http: aiohttp.ClientSession, slack: SlackStandIn
) -> None:
    unknown = json.dumps([{"id": "F0NOSUCHFILE"}])
    body = await call(http, slack, "files.completeUploadExternal", files=unknown)
    assert body["error"] == "file_not_found"
    started = await announce(http, slack)
    async with http.post(started["upload_url"], data=PNG) as response:
        assert response.status == 200
    files = json.dumps([{"id": started["file_id"]}])
    first = await call(http, slack, "files.completeUploadExternal", files=files)
    assert first["ok"] is True and not slack.messages  # no channel: the file stays private
    again = await call(http, slack, "files.completeUploadExternal", files=files, channel_id="C1")
    assert again["error"] == "file_not_found"


@pytest.mark.parametrize(
    ("channel_id", "error"),
    [("C9", "channel_not_found"), ("#ml-fraud", "invalid_arguments"), ("C2", "not_in_channel")],
)
async def test_complete_checks_the_channel(
    http: aiohttp.ClientSession, slack: SlackStandIn, channel_id: str, error: str
) -> None:
    slack.workspace.outside.add("C2")
    started = await announce(http, slack)
    async with http.post(started["upload_url"], data=PNG) as response:
        assert response.status == 200
    files = json.dumps([{"id": started["file_id"]}])
    body = await call(
        http, slack, "files.completeUploadExternal", files=files, channel_id=channel_id
    )
    assert body["ok"] is False and body["error"] == error


@pytest.mark.parametrize(
    ("files", "message"),
    [(None, "missing required field: files"), ("[{}]", "missing required field: id")],
)
async def test_complete_refuses_malformed_files(
    http: aiohttp.ClientSession, slack: SlackStandIn, files: str | None, message: str
) -> None:
    form = {} if files is None else {"files": files}
    body = await call(http, slack, "files.completeUploadExternal", **form)
    assert body["error"] == "invalid_arguments"
    assert message in body["response_metadata"]["messages"][0]


async def test_slack_sdk_files_upload_v2_runs_the_flow(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    response = await client.files_upload_v2(
        channel="C1",
        content=PNG,
        filename="digest.png",
        title="Digest",
        initial_comment="daily digest",
    )
    assert response["file"]["title"] == "Digest"
    file_id = response["file"]["id"]
    assert slack.files.data(file_id) == PNG
    methods = [c.method for c in slack.calls]
    assert methods == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    assert slack.messages[-1].text == "daily digest"


async def test_slack_sdk_sees_errors_as_slack_api_errors(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as caught:
        await client.files_upload_v2(channel="C9", content=PNG, filename="digest.png")
    assert caught.value.response["error"] == "channel_not_found"
    slack.fail("upload", status=500)
    with pytest.raises(SlackRequestError, match="status: 500"):
        await client.files_upload_v2(channel="C1", content=PNG, filename="digest.png")


async def test_the_console_shows_a_shared_file_and_saves_its_bytes(
    slack: SlackStandIn, client: AsyncWebClient, tmp_path: Path
) -> None:
    out = io.StringIO()
    async with aiohttp.ClientSession() as session:
        console = Console(
            "http://127.0.0.1:9",
            "secret",
            slack,
            Transcript(out, {"U0BOT": "mlops-bot"}, slack.workspace.channels),
            session,
            files_dir=tmp_path,
        )
        slack.subscribe(console.on_slack)
        response = await client.files_upload_v2(
            channel="C1", content=PNG, filename="digest.png", title="Daily digest",
            initial_comment="fraud prod: daily digest",
        )  # fmt: skip
    saved = tmp_path / f"{response['file']['id']}-digest.png"
    assert saved.read_bytes() == PNG
    shown = out.getvalue()
    assert "[#ml-fraud] @mlops-bot\n  fraud prod: daily digest" in shown
    assert f"[file 'Daily digest': {len(PNG):,} bytes, saved to {saved}]" in shown
