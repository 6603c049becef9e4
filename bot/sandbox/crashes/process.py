"""The bot as its own process (`python -m bot serve`), in its own process group, and the
processes it leaves behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import aiohttp

from bot.crash import CRASH_AFTER_ENV, CRASH_AT_ENV, HIT_MARK

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class BotDidNotStart(RuntimeError):
    """The bot exited or never answered /healthz; the message has the end of its log."""


class BotProcess:
    """One bot process after another on the same config (a restart is a new process)."""

    def __init__(self, config: Path, url: str, env: dict[str, str], log: Path) -> None:
        self.config = config
        self.url = url
        self.env = env
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self, crash_at: str = "", crash_after: int = 1) -> None:
        """Start the bot (with crash points armed when ``crash_at`` names some); returns once
        it answers /healthz."""
        env = dict(self.env)
        if crash_at:
            env |= {CRASH_AT_ENV: crash_at, CRASH_AFTER_ENV: str(crash_after)}
        self.starts += 1
        with self.log.open("a", encoding="utf-8") as out:
            out.write(f"=== start {self.starts} (crash at {crash_at or '-'})\n")
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "serve",
                "--config",
                str(self.config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                cwd=self.config.parent,
                start_new_session=True,
            )
        await self._ready()

    async def _ready(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            for _ in range(int(READY_TIMEOUT / 0.1)):
                if not self.alive:
                    raise BotDidNotStart(f"the bot exited at start:\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise BotDidNotStart(f"the bot did not answer /healthz:\n{self.tail()}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def died(self, timeout: float) -> bool:  # noqa: ASYNC109 - a bound, not a deadline
        """Wait up to ``timeout`` for the process to end by itself (a crash point)."""
        if self.proc is None:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), timeout)
        return not self.alive

    async def kill(self) -> None:
        """SIGKILL the bot process only: what it started keeps running, as after an OOM kill."""
        if self.alive:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    async def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after a bound); then nothing of its group survives."""
        if self.proc is None:
            return None
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
            await self.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode

    def hits(self) -> list[str]:
        """The crash points that fired, from the bot's log."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return [line[len(HIT_MARK) :] for line in text.splitlines() if line.startswith(HIT_MARK)]

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (``NAME=value``)."""
    found, needle = [], b"\0" + marker.encode() + b"\0"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in b"\0" + environ:
            found.append(int(entry.name))
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
