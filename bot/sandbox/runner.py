"""`mlops-bot sandbox`: the real bot wired to local stand-ins, driven from a console or a script."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

import aiohttp

from bot import app as bot_app
from bot.config.loading import load_settings
from bot.sandbox.aws import MotoServer
from bot.sandbox.console import Console, ConsoleError
from bot.sandbox.fixtures.ab import MetricsLine
from bot.sandbox.gitlab.server import GitLabStandIn
from bot.sandbox.monitor_line import MonitorLine
from bot.sandbox.people import PEOPLE, SIGNING_SECRET
from bot.sandbox.slack import SlackStandIn
from bot.sandbox.stand_ins import StandIns, control_file, sandbox_settings
from bot.sandbox.transcript import Transcript


def sample_config() -> Path:
    return Path(str(resources.files("bot.sandbox").joinpath("sample-config.yaml")))


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

    async def restart(self) -> None:
        """Stop the bot as a deploy or a crash would, and start a new one on the same store and
        stand-ins (what was in flight must be picked up from the store)."""
        await bot_app.stop(self.bot)
        self.bot = await bot_app.build(self.bot.settings)
        self.url = await bot_app.start(self.bot, host="127.0.0.1", port=0)

    def busy(self) -> bool:
        """True while the bot still works on a command, click or reaction it has acked."""
        processor = self.bot.interactions
        return bool(self.bot.deps.inflight.tasks) or (processor is not None and processor.busy())

    def console(self, out: TextIO, session: aiohttp.ClientSession) -> Console:
        """A console that prints to ``out`` everything the bot posts from now on."""
        names = {p.id: p.name for p in PEOPLE} | {"U0BOT": "mlops-bot"}
        transcript = Transcript(out, names, self.slack.workspace.channels)
        console = Console(
            self.url,
            SIGNING_SECRET,
            self.slack,
            transcript,
            session,
            control_file=control_file(self.stand_ins),
            busy=self.busy,
            metrics=MetricsLine(self.bot.settings, self.aws) if self.aws else None,
            monitor=MonitorLine(lambda: self.bot),
        )
        self.slack.subscribe(console.on_slack)
        return console

    @property
    def aws(self) -> MotoServer | None:
        server: MotoServer | None = self.stand_ins.aws
        return server


@asynccontextmanager
async def running_sandbox(config: Path | None = None) -> AsyncIterator[Sandbox]:
    """Start the stand-ins and the bot on a temp SQLite store; stop them all on exit."""
    base = load_settings(config or sample_config(), env={})
    with tempfile.TemporaryDirectory(prefix="mlops-bot-sandbox-") as tmp:
        stand_ins = await StandIns.started(base, Path(tmp))
        try:
            bot = await bot_app.build(sandbox_settings(base, stand_ins, Path(tmp)))
            sandbox = Sandbox(stand_ins, bot, "")
            try:
                await bot.store.migrate()
                sandbox.url = await bot_app.start(bot, host="127.0.0.1", port=0)
                yield sandbox
            finally:
                await bot_app.stop(sandbox.bot)
        finally:
            await stand_ins.stop()


def banner(sandbox: Sandbox) -> str:
    return (
        f"mlops-bot sandbox: the bot listens at {sandbox.url}/slack/events\n"
        f"signing secret: {SIGNING_SECRET}   (sign your own requests with it)\n"
        f"Slack stand-in: {sandbox.slack.base_url}   GitLab stand-in: {sandbox.gitlab.url}\n"
        "type `help` for console lines; you are @alice\n"
    )


async def read_lines(script: Path | None, prompt: Callable[[], None]) -> AsyncIterator[str]:
    if script is not None:
        text = await asyncio.to_thread(script.read_text, encoding="utf-8")
        for line in text.splitlines():
            yield line
        return
    async for line in stdin_lines(prompt):
        yield line


async def stdin_lines(prompt: Callable[[], None]) -> AsyncIterator[str]:
    """Lines from stdin without a blocking thread, so Ctrl-C ends the console at once."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
    except (ValueError, OSError):  # stdin is a plain file: read it in a thread, line by line
        while line := await asyncio.to_thread(sys.stdin.readline):
            yield line
        return
    try:
        while True:
            prompt()
            data = await reader.readline()
            if not data:
                return
            yield data.decode("utf-8", errors="replace")
    finally:
        transport.close()


async def run(
    config: Path | None, script: Path | None, out: TextIO, *, wait_seconds: float = 30.0
) -> int:
    """Run the console; 0 when every line ran, 1 when a line failed or the bot stopped."""
    failures = 0
    async with (
        running_sandbox(config) as sandbox,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
    ):
        console = sandbox.console(out, session)
        console.wait_timeout = wait_seconds
        transcript = console.transcript
        transcript.say(banner(sandbox))
        interactive = script is None and sys.stdin.isatty()

        def prompt() -> None:
            if interactive:
                out.write(f"@{console.person.name}> ")
                out.flush()

        async for line in read_lines(script, prompt):
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
