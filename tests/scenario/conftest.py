"""The whole bot, started as the sandbox starts it: real HTTP, signed requests, Slack stand-in."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox, running_sandbox


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
    return sandbox.console(transcript_out, http)
