"""GitLab webhooks through the real endpoint: tokens, dedupe, routing, cards, crash recovery."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
import sqlalchemy as sa
import structlog
import yaml

from bot import app as bot_app
from bot.sandbox.gitlab.hooks import pipeline_hook, pipeline_story
from bot.sandbox.people import WEBHOOK_SECRET
from bot.sandbox.runner import Sandbox, running_sandbox, sample_config
from bot.sandbox.slack import Message
from bot.sandbox.webhook_replay import gitlab_headers
from bot.services.ci.results import CiResults
from bot.store import Store
from bot.store.schema import inbox
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "gitlab"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


async def deliver(
    http: aiohttp.ClientSession,
    bot_url: str,
    body: bytes,
    *,
    token: str | None = WEBHOOK_SECRET,
    key: str | None = None,
) -> tuple[int, str]:
    headers = gitlab_headers(body, token or "", idempotency_key=key)
    if token is None:
        del headers["X-Gitlab-Token"]
    async with http.post(f"{bot_url}/gitlab/webhook", data=body, headers=headers) as response:
        return response.status, await response.text()


async def settled(sandbox: Sandbox, store: Store | None = None, timeout: float = 15.0) -> None:
    """Wait until no delivery is pending (each is marked only after its Slack effect)."""
    store = store or sandbox.bot.store

    async def done() -> bool:
        return "pending" not in await store.inbox.counts()

    await eventually(done, timeout=timeout)
    await sandbox.bot.notifier.flush()


def posts(sandbox: Sandbox, channel: str, *, threads: bool = False) -> list[Message]:
    return [
        m
        for m in sandbox.slack.messages
        if m.channel == channel and (m.thread_ts is not None) == threads and not m.ephemeral_to
    ]


def shown(message: Message) -> str:
    return message.text + "\n" + json.dumps(message.blocks or [])


def write_config(tmp_path: Path, webhooks: dict[str, Any]) -> Path:
    data = yaml.safe_load(sample_config().read_text())
    data["webhooks"] = webhooks
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


ROUTES = [
    {"ref": "$default", "statuses": ["failed"], "kinds": ["pipeline"], "channel": "#ml-alerts"},
    {"project": "ml/fraud", "sources": ["merge_request_event"], "channel": "#ml-fraud"},
    {"project": "ml/*", "kinds": ["deployment"], "statuses": ["success"], "channel": "C0CI"},
]


@pytest.fixture
async def routed(tmp_path: Path) -> AsyncIterator[Sandbox]:
    config = {"secret": WEBHOOK_SECRET, "project_secrets": {"ml/churn": "churn-secret"}}
    async with running_sandbox(write_config(tmp_path, {**config, "routes": ROUTES})) as sandbox:
        yield sandbox


async def test_a_pipeline_event_posts_one_card_in_the_routed_channel(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    assert await deliver(http, sandbox.url, fixture("pipeline_success.json")) == (200, "stored\n")
    await settled(sandbox)
    (card,) = posts(sandbox, "C0CI")
    text = shown(card)
    for expected in ("Pipeline #88231", "passed", "Use focal loss", "Alice Martin", "took 11m 23s"):
        assert expected in text
    assert ":white_check_mark: build" in text and ":white_check_mark: evaluate" in text
    assert len(sandbox.slack.calls_to("chat.postMessage")) == 1


async def test_the_card_is_edited_as_jobs_progress_and_a_failed_job_lands_in_its_thread(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    results = cast(CiResults, sandbox.bot.worker.processor)  # type: ignore[union-attr]
    results.logs = FakeLogs({550202: "collected 48 items\n" * 40 + "FAILED test_auc - 0.81\n"})
    await deliver(http, sandbox.url, fixture("job_failed.json"))
    await settled(sandbox)
    await deliver(http, sandbox.url, fixture("pipeline_mr_failed.json"))
    await settled(sandbox)
    (card,) = posts(sandbox, "C0CI")
    text = shown(card)
    assert "Pipeline #88240" in text and " failed" in text and "!17 Try a cosine" in text
    assert ":x: test" in text and "feature/lr-schedule" in text
    assert sandbox.slack.calls_to("chat.update")
    (reply,) = posts(sandbox, "C0CI", threads=True)
    assert reply.thread_ts == card.ts
    assert "Job *<https://gitlab.example.com/ml/fraud/-/jobs/550202|unit>* failed" in shown(reply)
    assert "FAILED test_auc" in shown(reply) and shown(reply).count("collected 48") < 31
    assert len(sandbox.slack.calls_to("chat.postMessage")) == 2


async def test_routing_rules_choose_channels_and_unrouted_events_are_not_posted(
    routed: Sandbox, http: aiohttp.ClientSession
) -> None:
    churn_failed = pipeline_hook("ml/churn", 501, "failed", {5011: ("unit", "test", "failed")})
    await deliver(http, routed.url, fixture("pipeline_success.json"))  # main, passed: no rule
    await deliver(http, routed.url, fixture("pipeline_mr_failed.json"))  # MR pipeline of fraud
    await deliver(http, routed.url, churn_failed.payload(), token="churn-secret")
    await deliver(http, routed.url, fixture("merge_request_open.json"))  # no MR rule
    await deliver(http, routed.url, fixture("deployment_success.json"))
    await settled(routed)
    assert [m.text.split(" failed")[0] for m in posts(routed, "C0FRAUD")] == ["Pipeline #88240"]
    assert [m.text.split(" failed")[0] for m in posts(routed, "C0ALERTS")] == ["Pipeline #501"]
    (deploy,) = posts(routed, "C0CI")
    assert "Deployment to" in deploy.text and "staging" in shown(deploy)
    threads = [c.args for c in routed.slack.calls_to("chat.postMessage") if c.args.get("thread_ts")]
    assert len(routed.slack.calls_to("chat.postMessage")) == 3 + len(threads)
    assert sorted(t["channel"] for t in threads) == ["C0ALERTS", "C0FRAUD"]  # the failed jobs
    assert await routed.bot.store.inbox.counts() == {"processed": 5}


async def test_missing_or_wrong_tokens_are_refused_and_nothing_is_stored(
    routed: Sandbox, http: aiohttp.ClientSession
) -> None:
    body = fixture("pipeline_success.json")
    churn = pipeline_hook("ml/churn", 502, "success", {}).payload()
    with structlog.testing.capture_logs() as logs:
        assert (await deliver(http, routed.url, body, token=None))[0] == 401
        assert (await deliver(http, routed.url, body, token="wrong-secret"))[0] == 401
        # ml/churn has its own secret: the global one is not enough for it
        assert (await deliver(http, routed.url, churn, token=WEBHOOK_SECRET))[0] == 401
        assert (await deliver(http, routed.url, b"{not json", token="wrong-secret"))[0] == 401
    assert await routed.bot.store.inbox.counts() == {}
    assert [e["reason"] for e in logs if e["event"] == "webhook_refused"] == [
        "missing token",
        "wrong token",
        "wrong token",
        "wrong token",
    ]
    assert WEBHOOK_SECRET not in repr(logs) and "churn-secret" not in repr(logs)
    assert (await deliver(http, routed.url, churn, token="churn-secret"))[0] == 200


async def test_malformed_json_with_a_valid_token_is_a_logged_400(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    with structlog.testing.capture_logs() as logs:
        status, text = await deliver(http, sandbox.url, b'{"object_kind": "pipeline",')
    assert status == 400 and "malformed JSON payload" in text and "line 1" in text
    # the sandbox's monitoring loop may log its own checks meanwhile
    assert [e["event"] for e in logs if e["event"].startswith("webhook")] == ["webhook_malformed"]
    assert WEBHOOK_SECRET not in text + repr(logs)
    assert (await deliver(http, sandbox.url, b"[1, 2]"))[0] == 400
    assert await sandbox.bot.store.inbox.counts() == {}


async def test_a_redelivery_has_exactly_one_effect(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    body = fixture("pipeline_success.json")
    answers = [await deliver(http, sandbox.url, body, key="same-key") for _ in range(3)]
    assert answers == [(200, "stored\n"), (200, "duplicate\n"), (200, "duplicate\n")]
    headers = {"X-Gitlab-Token": WEBHOOK_SECRET, "X-Gitlab-Event": "Pipeline Hook"}
    for _ in range(2):  # no key and no UUID: the body's hash is the key
        async with http.post(f"{sandbox.url}/gitlab/webhook", data=body, headers=headers) as r:
            assert r.status == 200
    await settled(sandbox)
    assert await sandbox.bot.store.inbox.counts() == {"processed": 2}
    assert len(sandbox.slack.calls_to("chat.postMessage")) == 1


async def test_kinds_the_bot_does_not_use_are_stored_as_ignored(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    assert await deliver(http, sandbox.url, fixture("push.json")) == (200, "ignored\n")
    assert await deliver(http, sandbox.url, b'{"object_kind": "pipeline"}') == (200, "stored\n")
    await settled(sandbox)  # a pipeline event without a project: kept as ignored, with why
    assert await sandbox.bot.store.inbox.counts() == {"ignored": 2}
    assert sandbox.slack.calls_to("chat.postMessage") == []


async def test_a_crash_after_the_ack_loses_nothing_and_posts_once(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    worker = sandbox.bot.worker
    assert worker is not None
    await worker.stop()  # the process dies right after answering 200
    for name in ("pipeline_mr_failed.json", "job_failed.json"):
        assert (await deliver(http, sandbox.url, fixture(name)))[0] == 200
    assert await sandbox.bot.store.inbox.counts() == {"pending": 2}
    await restarted(sandbox)
    assert len(posts(sandbox, "C0CI")) == 1 and len(posts(sandbox, "C0CI", threads=True)) == 1
    # a crash after the effect but before the mark: everything is processed again, harmlessly
    async with sandbox.bot.store.db.write() as conn:
        await conn.execute(sa.update(inbox).values(status="pending", done_at=None))
    await restarted(sandbox)
    assert len(posts(sandbox, "C0CI")) == 1 and len(posts(sandbox, "C0CI", threads=True)) == 1
    assert " failed" in posts(sandbox, "C0CI")[0].text


async def restarted(sandbox: Sandbox) -> None:
    """A new process on the same store: its worker starts with what is left in the inbox."""
    bot = await bot_app.build(sandbox.bot.settings)
    try:
        await bot_app.start(bot, host="127.0.0.1", port=0)
        await settled(sandbox, bot.store)
        await bot.notifier.flush()
    finally:
        await bot_app.stop(bot)


async def test_a_burst_is_coalesced_and_survives_slack_rate_limits(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    stories = {
        pid: pipeline_story("ml/fraud", pid, fail="unit" if pid % 2 else None)
        for pid in range(701, 711)
    }
    sandbox.slack.fail("chat.update", status=429, retry_after=1, times=3)
    sandbox.slack.fail("chat.postMessage", status=429, retry_after=1, times=2)

    async def replay(pid: int) -> None:
        for n, event in enumerate(stories[pid]):
            key = f"{pid}-{n}"
            assert (await deliver(http, sandbox.url, event.payload(), key=key))[0] == 200
            if n % 5 == 0:  # GitLab retries some deliveries
                assert (await deliver(http, sandbox.url, event.payload(), key=key))[0] == 200

    await asyncio.gather(*(replay(pid) for pid in stories))
    await settled(sandbox, timeout=30)
    cards = posts(sandbox, "C0CI")
    assert sorted(int(c.text.split("#")[1].split(" ")[0]) for c in cards) == list(stories)
    updates = sandbox.slack.calls_to("chat.update")
    for card in cards:
        pid = int(card.text.split("#")[1].split(" ")[0])
        edits = [u for u in updates if u.args.get("ts") == card.ts and u.status == 200]
        assert len(edits) < len(stories[pid]) // 2  # coalesced: never one call per event
        assert card.text.endswith(f"{'failed' if pid % 2 else 'passed'}: ml/fraud main")
    assert len(posts(sandbox, "C0CI", threads=True)) == 5  # one trace per failed pipeline


class FakeLogs:
    """The JobLogs port as a GitLab adapter offers it, over a fixed set of traces."""

    def __init__(self, traces: dict[int, str]) -> None:
        self.traces = traces

    async def job_log_tail(self, project: str, job_id: int, lines: int = 30) -> str:
        return "\n".join(self.traces[job_id].splitlines()[-lines:])


def test_the_sandbox_replays_a_webhook_file(tmp_path: Path) -> None:
    script = tmp_path / "ci.txt"
    script.write_text(
        f"webhook {FIXTURES / 'pipeline_success.json'}\n"
        "wait until Pipeline #88231\n"
        f"webhook {FIXTURES / 'push.json'}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot", "sandbox", "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "(GitLab delivered Pipeline Hook from pipeline_success.json: HTTP 200 stored)" in out
    assert "[#ci] @mlops-bot\n  :white_check_mark: *<https://gitlab.example.com/ml/fraud" in out
    assert "(GitLab delivered Push Hook from push.json: HTTP 200 ignored)" in out


async def test_a_delivery_slack_refuses_is_retried_later_not_in_a_loop(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    routes = [{"channel": "#no-such-channel"}]
    config = write_config(tmp_path, {"secret": WEBHOOK_SECRET, "routes": routes})
    async with running_sandbox(config) as sandbox:
        await deliver(http, sandbox.url, fixture("pipeline_success.json"))
        store = sandbox.bot.store

        async def attempted() -> bool:
            return any(card.attempts for card in await store.cards.pending())

        await eventually(attempted)
        await asyncio.sleep(0.5)
        assert len(sandbox.slack.calls_to("chat.postMessage")) == 1  # waits for its retry
        async with store.db.read() as conn:
            row = (await conn.execute(sa.select(inbox))).one()
        assert row.status == "processed"  # done: the card waits in the outbox instead
        (card,) = await store.cards.pending()
        assert card.error == "channel_not_found" and card.key.endswith("@#no-such-channel")
