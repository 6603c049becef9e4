"""The Slack stand-in through a real AsyncWebClient: Slack's shapes, errors and controls."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.slack import Message, SlackStandIn, SlackUser

TOKEN = "xoxb-sandbox-token"
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    stand_in = SlackStandIn(
        bot_token=TOKEN,
        users=[SlackUser("U1", "alice", "Alice Liddell", is_admin=True), SlackUser("U2", "bob")],
        usergroups={"S1": ["U1", "U2"]},
        usergroup_handles={"S1": "ml-approvers"},
        channels={"C1": "ml-fraud", "C2": "ml-ops"},
    )
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
def client(slack: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=slack.base_url, retry_handlers=[])


async def slack_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


async def test_auth_test_names_the_bot(client: AsyncWebClient) -> None:
    response = await client.auth_test()
    assert response["user_id"] == "U0BOT" and response["team_id"] == "T0SANDBOX"
    assert response["bot_id"] == "B0BOT" and response["url"].startswith("https://")


async def test_post_message_returns_channel_ts_and_message(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    response = await client.chat_postMessage(channel="#ml-fraud", text="hi", blocks=[SECTION])
    assert response["channel"] == "C1"
    assert re.fullmatch(r"\d{10}\.\d{6}", response["ts"])
    message = response["message"]
    assert message["type"] == "message" and message["user"] == "U0BOT"
    assert message["text"] == "hi" and message["blocks"] == [SECTION]
    assert message["ts"] == response["ts"] and message["bot_id"] == "B0BOT"
    assert slack.messages[0].channel == "C1" and slack.messages[0].blocks == [SECTION]


async def test_ts_values_are_unique_and_increasing(client: AsyncWebClient) -> None:
    stamps = [(await client.chat_postMessage(channel="C1", text="x"))["ts"] for _ in range(5)]
    assert stamps == sorted(stamps, key=float) and len(set(stamps)) == 5


async def test_channel_by_bare_name_and_unknown_channel(client: AsyncWebClient) -> None:
    assert (await client.chat_postMessage(channel="ml-ops", text="x"))["channel"] == "C2"
    err = await slack_error(client.chat_postMessage(channel="#nope", text="x"))
    assert err.response["error"] == "channel_not_found"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channel": "C1"}, "no_text"),
        ({"channel": "C1", "text": "t", "blocks": [{"text": "no type"}]}, "invalid_blocks"),
        ({"channel": "C1", "text": "t", "blocks": ["not an object"]}, "invalid_blocks"),
        ({"channel": "C1", "text": "x" * 40_001}, "msg_too_long"),
    ],
)
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_post_message_validation(
    client: AsyncWebClient, kwargs: dict[str, Any], error: str
) -> None:
    err = await slack_error(client.chat_postMessage(**kwargs))
    assert err.response.status_code == 200 and err.response["error"] == error
    if error == "invalid_blocks":
        assert "json-pointer:/blocks/0" in err.response["response_metadata"]["messages"][0]


async def test_blocks_that_are_not_a_list_are_a_format_error(client: AsyncWebClient) -> None:
    err = await slack_error(
        client.api_call("chat.postMessage", json={"channel": "C1", "blocks": {"type": "x"}})
    )
    assert err.response["error"] == "invalid_blocks_format"


async def test_missing_required_argument(client: AsyncWebClient) -> None:
    err = await slack_error(client.api_call("chat.update", json={"channel": "C1", "text": "x"}))
    assert err.response["error"] == "invalid_arguments"
    assert err.response["response_metadata"]["messages"] == ["[ERROR] missing required field: ts"]


async def test_tokens_are_checked(slack: SlackStandIn) -> None:
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=slack.base_url, retry_handlers=[])
    assert (await slack_error(wrong.auth_test())).response["error"] == "invalid_auth"
    anonymous = AsyncWebClient(base_url=slack.base_url, retry_handlers=[])
    assert (await slack_error(anonymous.auth_test())).response["error"] == "not_authed"
    assert slack.messages == []


async def test_form_bodies_and_token_param_are_accepted(slack: SlackStandIn) -> None:
    form = {"token": TOKEN, "channel": "C2", "text": "form", "blocks": json.dumps([SECTION])}
    async with aiohttp.ClientSession() as session:
        async with session.post(slack.base_url + "chat.postMessage", data=form) as response:
            body = await response.json()
        params = {"token": TOKEN, "user": "U2"}
        async with session.get(slack.base_url + "users.info", params=params) as response:
            user = await response.json()
    assert body["ok"] and body["message"]["blocks"] == [SECTION]
    assert user["user"]["name"] == "bob"
    assert "token" not in slack.calls_to("chat.postMessage")[0].args


async def test_unknown_method_is_a_404_with_slacks_body(slack: SlackStandIn) -> None:
    url = slack.base_url + "chat.nope"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data={"token": TOKEN}) as response,
    ):
        assert response.status == 404
        assert await response.json() == {
            "ok": False,
            "error": "unknown_method",
            "req_method": "chat.nope",
        }


async def test_update_edits_in_place_and_keeps_blocks_when_omitted(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C1", text="v1", blocks=[SECTION])
    response = await client.chat_update(channel="C1", ts=posted["ts"], text="v2")
    assert response["channel"] == "C1" and response["ts"] == posted["ts"]
    assert response["text"] == "v2" and response["message"]["text"] == "v2"
    [message] = slack.messages
    assert (message.text, message.edited, message.blocks) == ("v2", 1, [SECTION])
    err = await slack_error(client.chat_update(channel="C1", ts="1.000001", text="x"))
    assert err.response["error"] == "message_not_found"


async def test_ephemeral_is_seen_only_by_its_user(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    response = await client.chat_postEphemeral(channel="C1", user="U2", text="psst")
    assert set(response.data) == {"ok", "message_ts"}
    assert slack.messages[0].ephemeral_to == "U2"
    err = await slack_error(client.chat_postEphemeral(channel="C1", user="U9", text="x"))
    assert err.response["error"] == "user_not_found"


async def test_delete_and_permalink(slack: SlackStandIn, client: AsyncWebClient) -> None:
    ts = (await client.chat_postMessage(channel="C1", text="x"))["ts"]
    link = await client.chat_getPermalink(channel="C1", message_ts=ts)
    assert link["permalink"].endswith("/archives/C1/p" + ts.replace(".", ""))
    deleted = await client.chat_delete(channel="C1", ts=ts)
    assert (deleted["channel"], deleted["ts"]) == ("C1", ts) and slack.messages[0].deleted
    err = await slack_error(client.chat_delete(channel="C1", ts=ts))
    assert err.response["error"] == "message_not_found"


async def test_users_info(client: AsyncWebClient) -> None:
    user = (await client.users_info(user="U1"))["user"]
    assert (user["id"], user["name"], user["real_name"], user["is_admin"]) == (
        "U1",
        "alice",
        "Alice Liddell",
        True,
    )
    assert user["profile"]["real_name"] == "Alice Liddell"
    err = await slack_error(client.users_info(user="U404"))
    assert err.response["error"] == "user_not_found"


async def test_usergroups(client: AsyncWebClient) -> None:
    assert (await client.usergroups_users_list(usergroup="S1"))["users"] == ["U1", "U2"]
    err = await slack_error(client.usergroups_users_list(usergroup="S404"))
    assert err.response["error"] == "no_such_subteam"
    [group] = (await client.usergroups_list(include_users=True))["usergroups"]
    assert (group["id"], group["handle"], group["users"]) == ("S1", "ml-approvers", ["U1", "U2"])


async def test_reactions(client: AsyncWebClient) -> None:
    ts = (await client.chat_postMessage(channel="C1", text="x"))["ts"]
    await client.reactions_add(channel="C1", timestamp=ts, name="white_check_mark")
    err = await slack_error(
        client.reactions_add(channel="C1", timestamp=ts, name="white_check_mark")
    )
    assert err.response["error"] == "already_reacted"
    got = await client.reactions_get(channel="C1", timestamp=ts)
    assert got["type"] == "message" and got["channel"] == "C1"
    assert got["message"]["reactions"] == [
        {"name": "white_check_mark", "users": ["U0BOT"], "count": 1}
    ]
    await client.reactions_remove(channel="C1", timestamp=ts, name="white_check_mark")
    err = await slack_error(client.reactions_remove(channel="C1", timestamp=ts, name="x"))
    assert err.response["error"] == "no_reaction"


async def test_conversations_info_and_replies(client: AsyncWebClient) -> None:
    channel = (await client.conversations_info(channel="C1"))["channel"]
    assert (channel["id"], channel["name"], channel["is_channel"]) == ("C1", "ml-fraud", True)
    root = (await client.chat_postMessage(channel="C1", text="root"))["ts"]
    reply = (await client.chat_postMessage(channel="C1", text="r1", thread_ts=root))["ts"]
    await client.chat_postMessage(channel="C1", text="r2", thread_ts=reply)  # lands under root
    thread = (await client.conversations_replies(channel="C1", ts=root))["messages"]
    assert [m["text"] for m in thread] == ["root", "r1", "r2"]
    assert thread[0]["reply_count"] == 2 and thread[2]["thread_ts"] == root
    err = await slack_error(client.conversations_replies(channel="C1", ts="1.000001"))
    assert err.response["error"] == "thread_not_found"


async def test_fail_answers_429_with_retry_after_then_recovers(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    slack.fail("chat.postMessage", retry_after=7, times=2)
    for _ in range(2):
        err = await slack_error(client.chat_postMessage(channel="C1", text="x"))
        assert err.response.status_code == 429 and err.response["error"] == "ratelimited"
        assert err.response.headers["Retry-After"] == "7"
    assert (await client.chat_postMessage(channel="C1", text="x"))["ok"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 429, 200]


async def test_fail_answers_server_errors(slack: SlackStandIn, client: AsyncWebClient) -> None:
    slack.fail("users.info", status=503)
    err = await slack_error(client.users_info(user="U1"))
    assert err.response.status_code == 503 and err.response["error"] == "service_unavailable"


async def test_response_url_records_ephemeral_in_channel_replace_and_delete(
    slack: SlackStandIn,
) -> None:
    url = slack.new_response_url(channel="C2", user="U1")
    async with aiohttp.ClientSession() as session:
        for payload in (
            {"text": "only you"},
            {"text": "edited", "replace_original": True},
            {"text": "everyone", "response_type": "in_channel"},
            {"delete_original": True},
        ):
            async with session.post(url, json=payload) as response:
                assert (response.status, await response.text()) == (200, "ok")
        async with session.post(slack.url + "/response/unknown", json={"text": "x"}) as response:
            assert response.status == 404
    mine, everyone = slack.messages
    assert (mine.channel, mine.ephemeral_to, mine.text, mine.edited) == ("C2", "U1", "edited", 1)
    assert (everyone.ephemeral_to, everyone.response_type, everyone.deleted) == (
        None,
        "in_channel",
        True,
    )
    assert len(slack.calls_to("response_url")) == 4


async def test_subscribers_see_every_change(slack: SlackStandIn, client: AsyncWebClient) -> None:
    seen: list[tuple[str, str]] = []

    def record(message: Message, kind: str) -> None:
        seen.append((kind, message.text))

    slack.subscribe(record)
    ts = (await client.chat_postMessage(channel="C1", text="a"))["ts"]
    await client.chat_update(channel="C1", ts=ts, text="b")
    await client.chat_postEphemeral(channel="C1", user="U1", text="c")
    await client.chat_delete(channel="C1", ts=ts)
    assert seen == [("posted", "a"), ("edited", "b"), ("ephemeral", "c"), ("deleted", "b")]


async def test_wait_for_times_out(slack: SlackStandIn) -> None:
    with pytest.raises(TimeoutError):
        await slack.wait_for(lambda: bool(slack.messages), timeout=0.1)
