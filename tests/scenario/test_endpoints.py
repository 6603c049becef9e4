"""/healthz, /readyz and /metrics on a running bot, and readiness on a store that is not ready."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from bot.metrics import Metrics
from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox
from bot.server import build_web_app
from bot.store import Store


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


async def test_health_ready_and_metrics(
    sandbox: Sandbox, console: Console, http: aiohttp.ClientSession
) -> None:
    assert await get(http, f"{sandbox.url}/healthz") == (200, "ok\n")
    assert await get(http, f"{sandbox.url}/readyz") == (200, "ready\n")
    await console.execute('/deploy fraud lock stg reason="metrics"')
    await console.execute("/deploy nope")
    await sandbox.bot.notifier.flush()
    status, text = await get(http, f"{sandbox.url}/metrics")
    assert status == 200
    assert 'mlops_bot_http_requests_total{route="/slack/events",status="200"} 2.0' in text
    assert 'mlops_bot_http_requests_total{route="/healthz",status="200"} 1.0' in text
    assert 'mlops_bot_interactions_total{outcome="recorded"} 2.0' in text
    assert 'mlops_bot_command_seconds_count{command="/deploy"} 2.0' in text
    assert 'mlops_bot_errors_total{kind="user_input"} 1.0' in text
    assert 'mlops_bot_slack_api_calls_total{method="chat.postMessage",result="ok"} 1.0' in text
    assert 'method="response_url"' in text or 'method="chat.postEphemeral"' in text


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def test_readyz_says_why_when_the_schema_is_behind(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path / 'old.db'}")
    runner, url = await serve(build_web_app(None, store, Metrics()))
    try:
        status, text = await get(http, f"{url}/readyz")
        assert status == 503
        assert "run `mlops-bot migrate`" in text
        await store.migrate()
        assert await get(http, f"{url}/readyz") == (200, "ready\n")
        status, _ = await get(http, f"{url}/slack/events")
        assert status == 405
    finally:
        await runner.cleanup()
        await store.close()
