"""Socket Mode: with an app token the bot opens a WebSocket instead of taking HTTP events;
envelopes are acknowledged by id and commands work as over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from bot import app as bot_app
from bot.config.connections import SlackSettings
from bot.config.loading import load_settings
from bot.config.runtime import StoreSettings
from bot.sandbox.people import BOT_TOKEN, CHANNELS, GROUPS, PEOPLE
from bot.sandbox.runner import sample_config
from bot.sandbox.slack import SlackStandIn, SlackUser
from tests.helpers import eventually

APP_TOKEN = "xapp-1-sandbox-app-token"


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    users = [SlackUser(id=p.id, name=p.name, real_name=p.real_name) for p in PEOPLE]
    server = SlackStandIn(
        bot_token=BOT_TOKEN, users=users, usergroups=GROUPS, channels=CHANNELS, app_token=APP_TOKEN
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(slack: SlackStandIn, tmp_path: Path) -> AsyncIterator[bot_app.Bot]:
    base = load_settings(sample_config(), env={})
    settings = base.model_copy(
        update={
            "slack": SlackSettings(
                bot_token=SecretStr(BOT_TOKEN),
                app_token=SecretStr(APP_TOKEN),
                api_url=slack.base_url,
            ),
            "store": StoreSettings(url=f"sqlite:///{tmp_path / 'bot.db'}"),
        }
    )
    running = await bot_app.build(settings)
    await running.store.migrate()
    await bot_app.start(running, host="127.0.0.1", port=0)
    yield running
    await bot_app.stop(running)


async def test_commands_arrive_over_the_socket(slack: SlackStandIn, bot: bot_app.Bot) -> None:
    socket = slack.socket_mode
    await socket.connected()
    command = {
        "team_id": "T0SANDBOX",
        "channel_id": "C0SANDBOX",
        "user_id": "U0ALICE",
        "command": "/deploy",
        "text": 'fraud lock stg reason="socket"',
        "trigger_id": "t-socket",
        "response_url": slack.new_response_url(channel="C0SANDBOX", user="U0ALICE"),
    }
    envelope = await socket.send("slash_commands", command)
    ack = await socket.acked(envelope)
    assert ack["envelope_id"] == envelope

    async def locked() -> bool:
        return await bot.store.get_lock("fraud", "stg") is not None

    await eventually(locked)
    await slack.wait_for(lambda: any(m.ephemeral_to == "U0ALICE" for m in slack.messages))
    assert any("Locked *fraud/stg*" in m.text for m in slack.messages)
    assert slack.calls_to("apps.connections.open")


async def test_no_http_events_in_socket_mode(bot: bot_app.Bot) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"{bot.url}/slack/events") as resp:
        assert resp.status == 404
