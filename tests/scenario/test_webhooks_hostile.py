"""Hostile and malformed deliveries at /gitlab/webhook: the token (and signature) first, bounded
parsing, a poison delivery fails only itself, keys that tell recursive hooks apart, the body's
``object_kind`` over the header, and random requests never get a 5xx."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config.webhooks import EventKind
from bot.sandbox.gitlab.hooks import pipeline_hook
from bot.sandbox.people import WEBHOOK_SECRET
from bot.sandbox.runner import Sandbox, running_sandbox, sample_config
from bot.sandbox.webhook_replay import gitlab_headers
from bot.services.ci.events import parse
from bot.store.inbox import Delivery
from bot.store.inbox_sql import Status
from bot.views.ci import ci_card
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "gitlab"
SIGNING_TOKEN = "whsec_" + base64.b64encode(b"sixteen byte key").decode()


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    caplog.set_level(logging.ERROR)
    yield caplog.records


async def post(
    http: aiohttp.ClientSession, sandbox: Sandbox, body: bytes, headers: dict[str, str]
) -> tuple[int, str]:
    async with http.post(f"{sandbox.url}/gitlab/webhook", data=body, headers=headers) as r:
        return r.status, await r.text()


def cards(sandbox: Sandbox) -> list[str]:
    return [
        m.text + json.dumps(m.blocks or [])
        for m in sandbox.slack.messages
        if m.thread_ts is None and not m.ephemeral_to
    ]


async def settled(sandbox: Sandbox) -> None:
    async def done() -> bool:
        return "pending" not in await sandbox.bot.store.inbox.counts()

    await eventually(done, timeout=20)
    await sandbox.bot.notifier.flush()


async def test_deep_nesting_without_a_token_is_401_and_with_one_400(
    sandbox: Sandbox, http: aiohttp.ClientSession, errors: list[logging.LogRecord]
) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    assert (await post(http, sandbox, body, {"Content-Type": "application/json"}))[0] == 401
    status, text = await post(http, sandbox, body, gitlab_headers(body, WEBHOOK_SECRET))
    assert status == 400 and "nested too deeply" in text
    assert errors == []


async def test_the_bodys_object_kind_wins_over_a_wrong_event_header(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    body = (FIXTURES / "pipeline_success.json").read_bytes()
    headers = gitlab_headers(body, WEBHOOK_SECRET) | {"X-Gitlab-Event": "Job Hook"}
    assert (await post(http, sandbox, body, headers)) == (200, "stored\n")
    await settled(sandbox)
    assert await sandbox.bot.store.inbox.counts() == {"processed": 1}
    assert len(cards(sandbox)) == 1 and "Pipeline" in cards(sandbox)[0]


async def test_recursive_hooks_sharing_an_event_uuid_are_not_duplicates(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    shared = str(uuid.uuid4())
    for pipeline in (41, 42):
        body = pipeline_hook("ml/fraud", pipeline, "success", {}).payload()
        headers = gitlab_headers(body, WEBHOOK_SECRET) | {"X-Gitlab-Event-UUID": shared}
        del headers["Idempotency-Key"]
        assert (await post(http, sandbox, body, headers)) == (200, "stored\n")
    await settled(sandbox)
    assert await sandbox.bot.store.inbox.counts() == {"processed": 2}


async def test_a_poison_delivery_fails_only_itself(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    worker = sandbox.bot.worker
    assert worker is not None
    await worker.stop()  # let the batch gather, as a burst would
    poison = pipeline_hook("ml/fraud", 60, "success", {}).body
    poison["object_attributes"]["id"] = 2**70
    bodies = [json.dumps(poison).encode()] + [
        pipeline_hook("ml/fraud", n, "success", {}).payload() for n in (61, 62, 63, 64)
    ]
    for body in bodies:
        assert (await post(http, sandbox, body, gitlab_headers(body, WEBHOOK_SECRET)))[0] == 200
    worker.start()
    await settled(sandbox)
    counts = await sandbox.bot.store.inbox.counts()
    assert counts == {"processed": 4, "ignored": 1}
    assert len(cards(sandbox)) == 4
    rows = await sandbox.bot.store.inbox.rows(status=Status.IGNORED)
    assert rows[0].error is not None and "out of range" in rows[0].error


def test_the_deployment_card_names_the_deployment_and_links_the_job() -> None:
    body = json.loads((FIXTURES / "deployment_success.json").read_bytes())
    event = parse(EventKind.DEPLOYMENT, body)
    card = ci_card(event.card)
    shown = card.text + json.dumps(card.blocks)
    assert f"deployment #{body['deployment_id']}" in shown
    assert f"{body['deployable_url']}|job #{body['deployable_id']}" in shown
    assert f"|#{body['deployment_id']}>" not in shown


def signed_headers(body: bytes, token: str, *, at: float | None = None) -> dict[str, str]:
    """What GitLab 19 sends with a signing token: Standard Webhooks headers."""
    delivery, stamp = str(uuid.uuid4()), str(int(at if at is not None else time.time()))
    key = base64.b64decode(token.removeprefix("whsec_"))
    digest = hmac.new(key, f"{delivery}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return gitlab_headers(body, WEBHOOK_SECRET, idempotency_key=delivery) | {
        "webhook-id": delivery,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


@pytest.fixture
async def signing_sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    data = yaml.safe_load(sample_config().read_text())
    data.setdefault("webhooks", {})["signing_token"] = SIGNING_TOKEN
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    async with running_sandbox(path) as running:
        yield running


async def test_signed_deliveries_are_checked_with_a_replay_window(
    signing_sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    body = pipeline_hook("ml/fraud", 70, "success", {}).payload()
    good = signed_headers(body, SIGNING_TOKEN)
    assert (await post(http, signing_sandbox, body, good)) == (200, "stored\n")
    stale = signed_headers(body, SIGNING_TOKEN, at=time.time() - 3600)
    assert (await post(http, signing_sandbox, body, stale))[0] == 401
    wrong = signed_headers(body, "whsec_" + base64.b64encode(b"another key 1234").decode())
    assert (await post(http, signing_sandbox, body, wrong))[0] == 401
    unsigned = gitlab_headers(body, WEBHOOK_SECRET)
    assert (await post(http, signing_sandbox, body, unsigned))[0] == 401
    tampered = signed_headers(body, SIGNING_TOKEN)
    assert (await post(http, signing_sandbox, body + b" ", tampered))[0] == 401


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=os.environ | env,
        timeout=120,
        check=False,
    )


async def test_failed_deliveries_can_be_listed_and_retried_from_the_cli(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    inbox = sandbox.bot.store.inbox
    await inbox.put(Delivery("poison-1", "pipeline", "ml/fraud", "{}"))
    (item,) = [i for i in await inbox.next_batch(10) if i.key == "poison-1"]
    await inbox.mark_failed([item.id], "ml/fraud: not merged: DataError", retry_at=None)
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": sandbox.bot.settings.store_url}}))
    env = {"MLOPS_BOT_CONFIG": str(config)}
    listed = cli("inbox", "--failed", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "poison-1" in listed.stdout and "DataError" in listed.stdout
    missing = cli("inbox", "retry", "no-such-key", env=env)
    assert missing.returncode == 1 and "mlops-bot inbox --failed" in missing.stderr
    retried = cli("inbox", "retry", "poison-1", "--config", str(config), env={})
    assert retried.returncode == 0, retried.stderr
    assert [r.status for r in await inbox.rows() if r.key == "poison-1"] in (
        ["pending"],
        ["ignored"],  # the running worker may already have taken it again
    )


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["POST", "POST", "PUT", "GET"]),
    body=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.integers() | st.text(max_size=10),
            lambda c: (
                st.lists(c, max_size=3)
                | st.dictionaries(
                    st.sampled_from(
                        ["object_kind", "project", "object_attributes", "id", "builds"]
                    ),
                    c,
                    max_size=4,
                )
            ),
            max_leaves=10,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    token=st.sampled_from([None, "wrong", WEBHOOK_SECRET]),
)
async def test_random_deliveries_never_get_a_5xx(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
    errors: list[logging.LogRecord],
    method: str,
    body: bytes,
    token: str | None,
) -> None:
    headers = gitlab_headers(body, token or "")
    if token is None:
        del headers["X-Gitlab-Token"]
    async with http.request(
        method, f"{sandbox.url}/gitlab/webhook", data=body, headers=headers
    ) as r:
        assert r.status in {200, 400, 401, 405, 413}
    assert [r.getMessage() for r in errors] == []
