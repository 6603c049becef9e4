"""`mlops-bot sandbox`: the real bot wired to local stand-ins, driven from a console or a script."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

import aiohttp
from pydantic import SecretStr

from bot import app as bot_app
from bot.config import GitLabSettings, Settings, SlackSettings, StoreSettings, load_settings
from bot.sandbox.console import Console, ConsoleError
from bot.sandbox.gitlab import GitLabStandIn
from bot.sandbox.gitlab_projects import GITLAB_TOKEN, gitlab_stand_in
from bot.sandbox.people import BOT_TOKEN, CHANNELS, GROUPS, PEOPLE, SIGNING_SECRET
from bot.sandbox.slack import SlackStandIn, SlackUser
from bot.sandbox.transcript import Transcript


def sample_config() -> Path:
    return Path(str(resources.files("bot.sandbox").joinpath("sample-config.yaml")))


def sandbox_settings(base: Settings, stand_ins: StandIns, data_dir: Path) -> Settings:
    """The given settings pointed at the stand-ins and a throwaway SQLite store."""
    slack = SlackSettings(
        bot_token=SecretStr(BOT_TOKEN),
        signing_secret=SecretStr(SIGNING_SECRET),
        api_url=stand_ins.slack.base_url,
    )
    gitlab = GitLabSettings(url=stand_ins.gitlab.url, token=SecretStr(GITLAB_TOKEN))
    store = StoreSettings(url=f"sqlite:///{data_dir / 'sandbox.db'}")
    notifier = base.notifier.model_copy(update={"edit_interval_seconds": 0.2})
    training = base.training.model_copy(update={"poll_seconds": 0.5, "poll_max_seconds": 1.0})
    return base.model_copy(
        update={
            "slack": slack,
            "gitlab": gitlab,
            "store": store,
            "data_dir": data_dir,
            "notifier": notifier,
            "training": training,
        }
    )


@dataclass
class StandIns:
    """The outside systems the sandbox plays: Slack and GitLab."""

    slack: SlackStandIn
    gitlab: GitLabStandIn

    async def start(self) -> None:
        await self.slack.start()
        await self.gitlab.start()
        self.gitlab.auto_advance(0.25)

    async def stop(self) -> None:
        self.gitlab.auto_advance(None)
        await self.gitlab.stop()
        await self.slack.stop()


def stand_in() -> SlackStandIn:
    users = [SlackUser(id=p.id, name=p.name, real_name=p.real_name) for p in PEOPLE]
    return SlackStandIn(bot_token=BOT_TOKEN, users=users, usergroups=GROUPS, channels=CHANNELS)


@dataclass
class Sandbox:
    stand_ins: StandIns
    bot: bot_app.Bot
    url: str

    @property
    def slack(self) -> SlackStandIn:
        return self.stand_ins.slack

    @property
    def gitlab(self) -> GitLabStandIn:
        return self.stand_ins.gitlab


@asynccontextmanager
async def running_sandbox(config: Path | None = None) -> AsyncIterator[Sandbox]:
    """Start the stand-ins and the bot on a temp SQLite store; stop them all on exit."""
    base = load_settings(config or sample_config(), env={})
    stand_ins = StandIns(stand_in(), gitlab_stand_in())
    await stand_ins.start()
    with tempfile.TemporaryDirectory(prefix="mlops-bot-sandbox-") as tmp:
        settings = sandbox_settings(base, stand_ins, Path(tmp))
        bot = await bot_app.build(settings)
        try:
            await bot.store.migrate()
            url = await bot_app.start(bot, host="127.0.0.1", port=0)
            yield Sandbox(stand_ins, bot, url)
        finally:
            await bot_app.stop(bot)
            await stand_ins.stop()


def banner(sandbox: Sandbox) -> str:
    return (
        f"mlops-bot sandbox: the bot listens at {sandbox.url}/slack/events\n"
        f"signing secret: {SIGNING_SECRET}   (sign your own requests with it)\n"
        f"Slack stand-in: {sandbox.slack.base_url}   GitLab stand-in: {sandbox.gitlab.url}\n"
        "type `help` for console lines; you are @alice\n"
    )


async def read_lines(script: Path | None) -> AsyncIterator[str]:
    if script is not None:
        text = await asyncio.to_thread(script.read_text, encoding="utf-8")
        for line in text.splitlines():
            yield line
        return
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        yield line


async def run(config: Path | None, script: Path | None, out: TextIO) -> int:
    """Run the console; 0 when every line ran, 1 when a line failed or the bot stopped."""
    failures = 0
    async with (
        running_sandbox(config) as sandbox,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
    ):
        transcript = Transcript(
            out, {p.id: p.name for p in PEOPLE} | {"U0BOT": "mlops-bot"}, CHANNELS
        )
        console = Console(sandbox.url, SIGNING_SECRET, sandbox.slack, transcript, session)
        sandbox.slack.subscribe(console.on_slack)
        transcript.say(banner(sandbox))
        async for line in read_lines(script):
            if script is not None and line.strip():
                transcript.say(f"> {line.rstrip()}")
            try:
                if not await console.execute(line):
                    break
            except ConsoleError as exc:
                transcript.say(f"!! {exc}")
                if script is not None:
                    failures += 1
                    break
        await sandbox.bot.notifier.flush()
        await console.settle()
    return 1 if failures else 0
