"""Hostile and malformed input at /slack/events: authenticated first, never a 5xx, nothing
unhandled logged; each case from the first-contact review has its own test, and hypothesis
sends random methods, headers, encodings and bodies, signed and unsigned."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.parse
from collections.abc import Iterator

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.sandbox.people import SIGNING_SECRET
from bot.sandbox.runner import Sandbox
from bot.sandbox.signing import signed_headers, slack_signature

ALLOWED = {200, 400, 401, 405, 413}


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """Records at ERROR or above that appear while the test runs (unhandled exceptions)."""
    caplog.set_level(logging.ERROR)
    yield caplog.records


async def send(
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    body: bytes,
    headers: dict[str, str],
    method: str = "POST",
) -> tuple[int, str]:
    async with http.request(
        method, f"{sandbox.url}/slack/events", data=body, headers=headers
    ) as response:
        return response.status, await response.text()


def signed(body: bytes, content_type: str, stamp: str | None = None) -> dict[str, str]:
    """Slack's v0 signature over the raw bytes (which need not be UTF-8)."""
    stamp = stamp or str(int(time.time()))
    base = b"v0:" + stamp.encode() + b":" + body
    signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
        "Content-Type": content_type,
    }


def form(**fields: str) -> bytes:
    return urllib.parse.urlencode(fields).encode()


@pytest.mark.parametrize("stamp", ["abc", "1e10", "", "1796159316.5", " 12", "١٢٣", "-5"])
async def test_a_malformed_timestamp_is_a_failed_check(
    sandbox: Sandbox, http: aiohttp.ClientSession, stamp: str, errors: list[logging.LogRecord]
) -> None:
    body = form(command="/deploy", text="help", user_id="U0ALICE", channel_id="C0SANDBOX")
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + "0" * 64,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    assert (await send(http, sandbox, body, headers))[0] == 401
    assert errors == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"type": "event_callback", "event": {', "application/json"),
        (b"payload=not-json", "application/x-www-form-urlencoded"),
        (b"[1, 2, 3]", "application/json"),
        (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
        (b"[" * 5000 + b"]" * 5000, "application/json"),
    ],
)
async def test_malformed_bodies_get_401_unsigned_and_400_signed(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
    body: bytes,
    content_type: str,
    errors: list[logging.LogRecord],
) -> None:
    unsigned = {"Content-Type": content_type}
    assert (await send(http, sandbox, body, unsigned))[0] == 401
    assert (await send(http, sandbox, body, signed(body, content_type)))[0] == 400
    assert errors == []


async def test_block_actions_without_actions_is_ignored(
    sandbox: Sandbox, http: aiohttp.ClientSession, errors: list[logging.LogRecord]
) -> None:
    payload = {"type": "block_actions", "actions": [], "user": {"id": "U0ALICE"}}
    body = form(payload=json.dumps(payload))
    status, _ = await send(http, sandbox, body, signed(body, "application/x-www-form-urlencoded"))
    assert status == 200
    assert errors == []
    assert 'reason="block_actions without actions"' in (await metrics(http, sandbox))


@pytest.mark.parametrize(
    "event",
    [
        "a string",
        {"type": "reaction_added", "user": "U0ALICE", "reaction": "+1", "item": None},
        {"type": "app_mention", "user": "U0ALICE", "text": "hi"},
    ],
)
async def test_unusable_events_are_ignored_with_200(
    sandbox: Sandbox, http: aiohttp.ClientSession, event: object, errors: list[logging.LogRecord]
) -> None:
    envelope = {"type": "event_callback", "event_id": "Ev1", "event": event}
    body = json.dumps(envelope).encode()
    assert (await send(http, sandbox, body, signed(body, "application/json")))[0] == 200
    await sandbox.slack.wait_for(lambda: not sandbox.busy(), timeout=5)
    assert errors == []
    assert sandbox.slack.calls_to("chat.postMessage") == []


async def test_an_unknown_action_id_is_acked_and_ignored(
    sandbox: Sandbox, http: aiohttp.ClientSession, errors: list[logging.LogRecord]
) -> None:
    payload = {
        "type": "block_actions",
        "trigger_id": "t-unknown",
        "user": {"id": "U0ALICE"},
        "actions": [{"action_id": "someone.elses.button", "value": "{}"}],
    }
    body = form(payload=json.dumps(payload))
    status, _ = await send(http, sandbox, body, signed(body, "application/x-www-form-urlencoded"))
    assert status == 200
    assert errors == []


async def test_an_unknown_slash_command_gets_an_ephemeral_list_of_commands(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    body = form(command="/weather", text="", user_id="U0ALICE", channel_id="C0SANDBOX")
    status, text = await send(
        http, sandbox, body, signed(body, "application/x-www-form-urlencoded")
    )
    assert status == 200
    reply = json.loads(text)
    assert reply["response_type"] == "ephemeral"
    assert "`/train`" in reply["text"] and "`/deploy`" in reply["text"]
    assert "/weather" in reply["text"]


async def test_url_verification_answers_the_challenge(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
    status, text = await send(http, sandbox, body, signed(body, "application/json"))
    assert status == 200 and json.loads(text) == {"challenge": "c-123"}


async def test_a_get_is_405(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    assert (await send(http, sandbox, b"", {}, method="GET"))[0] == 405


async def metrics(http: aiohttp.ClientSession, sandbox: Sandbox) -> str:
    async with http.get(f"{sandbox.url}/metrics") as response:
        return await response.text()


METHODS = st.sampled_from(["POST", "POST", "POST", "PUT", "GET", "DELETE", "PATCH"])
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/json; charset=latin-1",
        "",
    ]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "event", "payload", "actions", "command", "item", "user"])
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)
BODIES = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    JSON_VALUES.map(lambda v: form(payload=json.dumps(v))),
    st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=6).map(
        lambda d: urllib.parse.urlencode(d).encode()
    ),
)
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x17F, exclude_characters="\x7f"),
    max_size=14,
)  # what an HTTP client can send in a header: no control characters
STAMPS = st.one_of(st.none(), HEADER_TEXT, st.integers(-(2**40), 2**40).map(str), st.just("now"))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=METHODS,
    content_type=CONTENT_TYPES,
    body=BODIES,
    sign=st.booleans(),
    stamp=STAMPS,
)
async def test_random_requests_never_get_a_5xx(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
    errors: list[logging.LogRecord],
    method: str,
    content_type: str,
    body: bytes,
    sign: bool,
    stamp: str | None,
) -> None:
    now = str(int(time.time()))
    headers = {"Content-Type": content_type} if content_type else {}
    if stamp is not None:
        headers["X-Slack-Request-Timestamp"] = now if stamp == "now" else stamp
    if sign:
        headers |= signed(body, content_type, now)
    status, _ = await send(http, sandbox, body, headers, method=method)
    assert status in ALLOWED
    assert [r.getMessage() for r in errors] == []


def test_the_signing_helper_matches_the_sandbox_signer() -> None:
    """The tests sign the way the sandbox does, which is how Slack does."""
    assert signed(b"a=b", "x", "17")["X-Slack-Signature"] == slack_signature(
        SIGNING_SECRET, "17", "a=b"
    )
    headers = signed_headers(SIGNING_SECRET, "a=b")
    assert (
        headers["X-Slack-Signature"]
        == signed(b"a=b", "x", headers["X-Slack-Request-Timestamp"])["X-Slack-Signature"]
    )
