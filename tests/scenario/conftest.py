"""The whole bot, started as the sandbox starts it: real HTTP, signed requests, Slack stand-in."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.sandbox.console import Console
from bot.sandbox.people import PEOPLE, SIGNING_SECRET
from bot.sandbox.runner import Sandbox, running_sandbox
from bot.sandbox.transcript import Transcript


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
def transcript_out() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def console(sandbox: Sandbox, http: aiohttp.ClientSession, transcript_out: io.StringIO) -> Console:
    names = {p.id: p.name for p in PEOPLE} | {"U0BOT": "mlops-bot"}
    transcript = Transcript(transcript_out, names, sandbox.slack.workspace.channels)
    console = Console(sandbox.url, SIGNING_SECRET, sandbox.slack, transcript, http)
    sandbox.slack.subscribe(console.on_slack)
    return console
