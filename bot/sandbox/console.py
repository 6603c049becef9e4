"""Console lines -> Slack-signed HTTP requests to the running bot, as the current user."""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.sandbox.fixtures.ab import MetricsLine
from bot.sandbox.people import HOME_CHANNEL, PEOPLE, WEBHOOK_SECRET, Person, by_name
from bot.sandbox.signing import signed_headers
from bot.sandbox.slack import SlackStandIn
from bot.sandbox.traffic import Traffic
from bot.sandbox.transcript import Transcript, buttons_of
from bot.sandbox.webhook_replay import ReplayError, replay

HELP = """console lines:
  /train ... | /deploy ...   send the slash command as the current user
  as @bob                    act as another user (alice, bob, carol, dave, eve)
  click N | click Label      click a button of the newest message that has buttons
  react :emoji: | unreact :emoji:   react to the newest prompt
  wait N | wait until TEXT   let background work progress (N seconds, or until TEXT shows)
  webhook FILE               deliver a GitLab webhook payload (JSON file) as GitLab would
  ecspresso MODE             make the next deploys fail, hang or lie (`fail@deploy`, `hang`,
                             `lie`; see bot/sandbox/ecspresso/cli.py); `ecspresso ok` resets
  metrics MODEL ENV MODE     put ALB-like CloudWatch data for an A/B split: A healthy, B
                             `healthy`, `b-errors`, `b-slow` or `b-accuracy` (trips the guard)
  traffic MODEL ENV WHAT     write prediction logs + labels into moto's S3: WHAT is
                             `drift FEATURE +0.5sd`, `accuracy -0.1`, `slow 300ms` (ALB
                             latency in CloudWatch) or `normal` (bot/sandbox/traffic.py)
  monitor check MODEL ENV    run a monitoring check now (as the loop would at its interval);
                             `monitor digest MODEL ENV` shares the daily digest chart now
  slack 429|500|hang|ok [METHOD]   make the Slack stand-in answer every call (or METHOD's)
                             with 429 + Retry-After, 500, or take effect and answer 30 s late;
                             `slack ok` ends it (the bot's cards catch up from its outbox)
  # comment                  ignored
  help | quit"""

WAIT_UNTIL_TIMEOUT = 30.0
TRAFFIC_SEED = 1
QUIET_PERIOD = 0.3
SETTLE_LIMIT = 5.0


class ConsoleError(Exception):
    """A console line failed in a way that makes a script fail (bad line, timeout, bot down)."""


@dataclass
class Console:
    bot_url: str
    signing_secret: str
    slack: SlackStandIn
    transcript: Transcript
    session: aiohttp.ClientSession
    person: Person = PEOPLE[0]
    channel: str = HOME_CHANNEL
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    last_activity: float = field(default_factory=time.monotonic)
    webhook_token: str = WEBHOOK_SECRET
    control_file: Path | None = None
    busy: Callable[[], bool] = lambda: False
    metrics: Callable[[str], str] | None = None  # bot.sandbox.fixtures.ab.MetricsLine
    traffic: Callable[[str], str] | None = None  # bot.sandbox.traffic.Traffic
    monitor: Callable[[str], Awaitable[str]] | None = None  # bot.sandbox.monitor_line
    files_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "mlops-bot-files")
    wait_timeout: float = WAIT_UNTIL_TIMEOUT
    changes: int = 0  # how many posts and edits this console has seen
    changed: dict[tuple[str, str], int] = field(default_factory=dict)  # message -> change no.
    line_started: int = 0  # the change count when the current line began
    previous_started: int = 0  # ... and when the line before it began

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def on_slack(self, message: Any, kind: str) -> None:
        """Stand-in subscriber: print what the bot posted and note that it is still busy."""
        self.touch()
        self.changes += 1
        self.changed[(message.channel, message.ts)] = self.changes
        self.transcript.write(message, kind)
        for shared in getattr(message, "files", None) or []:
            self.save_file(shared)

    def fresh(self, message: Any) -> bool:
        """Posted or edited since the previous console line began (so `wait until` never
        matches what an earlier command already showed)."""
        return self.changed.get((message.channel, message.ts), 0) > self.previous_started

    async def execute(self, line: str) -> bool:
        """Run one line; False means quit."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        self.previous_started, self.line_started = self.line_started, self.changes
        word, _, rest = line.partition(" ")
        if word in ("quit", "exit"):
            return False
        if word == "help":
            self.transcript.say(HELP)
        elif word in ("/train", "/deploy"):
            await self.slash(word, rest.strip())
        elif word == "as":
            self.switch(rest)
        elif word == "click":
            await self.click(rest.strip())
        elif word in ("react", "unreact"):
            await self.react(rest.strip(), added=word == "react")
        elif word == "wait":
            await self.wait(rest.strip())
        elif word == "webhook":
            await self.webhook(rest.strip())
        elif word == "ecspresso":
            self.ecspresso_mode(rest.strip())
        elif word == "metrics":
            self.put_metrics(rest.strip())
        elif word == "slack":
            self.slack_outage(rest.split())
        elif word == "traffic":
            self.steer_traffic(rest.strip())
        elif word == "monitor":
            await self.monitor_now(rest.strip())
        else:
            raise ConsoleError(f"unknown console line {word!r}; type `help`")
        return True

    def ecspresso_mode(self, mode: str) -> None:
        """What the ecspresso stand-in does on the next deploys (the file it reads each run)."""
        if self.control_file is None:
            raise ConsoleError("this console has no ecspresso stand-in to steer")
        self.control_file.write_text("" if mode in ("", "ok") else mode + "\n")
        self.transcript.say(f"(ecspresso stand-in: {mode or 'ok'})")

    def slack_outage(self, words: list[str]) -> None:
        """Steer the Slack stand-in: an outage of one method or all, or recovery."""
        if not words or len(words) > 2:
            raise ConsoleError("usage: slack 429|500|hang|ok [METHOD]")
        kind, method = words[0], (words[1] if len(words) == 2 else None)
        if kind == "ok":
            self.slack.recover(method)
        else:
            try:
                self.slack.outage(kind, method)
            except ValueError as exc:
                raise ConsoleError(str(exc)) from None
        self.transcript.say(f"(Slack stand-in: {kind} for {method or 'every method'})")

    def put_metrics(self, rest: str) -> None:
        if self.metrics is None:
            raise ConsoleError("this console has no CloudWatch stand-in to put metrics in")
        try:
            self.transcript.say(self.metrics(rest))
        except ValueError as exc:
            raise ConsoleError(str(exc)) from None

    def steer_traffic(self, rest: str) -> None:
        if self.traffic is None and isinstance(self.metrics, MetricsLine):
            # seeded: a script's traffic, and so what its checks find, is the same every run
            settings, aws = self.metrics.settings, self.metrics.aws
            self.traffic = Traffic(settings, aws, seed=TRAFFIC_SEED, replace=True)
        if self.traffic is None:
            raise ConsoleError("this console has no S3 stand-in to write traffic into")
        try:
            self.transcript.say(self.traffic(rest))
        except ValueError as exc:
            raise ConsoleError(str(exc)) from None

    async def monitor_now(self, rest: str) -> None:
        if self.monitor is None:
            raise ConsoleError("this console has no bot to run a monitoring check in")
        try:
            self.transcript.say(await self.monitor(rest))
        except ValueError as exc:
            raise ConsoleError(str(exc)) from None
        await self.settle()

    def save_file(self, shared: dict[str, Any]) -> None:
        """A file the bot shared: its bytes from the Slack stand-in, saved where it says."""
        data = self.slack.files.data(str(shared.get("id")))
        if data is None:
            return
        self.files_dir.mkdir(parents=True, exist_ok=True)
        path = self.files_dir / f"{shared['id']}-{Path(str(shared.get('name'))).name}"
        path.write_bytes(data)
        title = shared.get("title") or shared.get("name")
        self.transcript.say(f"  [file {title!r}: {len(data):,} bytes, saved to {path}]")

    def switch(self, name: str) -> None:
        person = by_name(name.strip())
        if person is None:
            known = ", ".join("@" + p.name for p in PEOPLE)
            raise ConsoleError(f"no sandbox user {name.strip()!r}; known: {known}")
        self.person = person
        self.transcript.say(f"(now acting as @{person.name})")

    def trigger_id(self) -> str:
        return f"{int(time.time())}.{next(self.ids)}.sandbox"

    async def slash(self, command: str, text: str) -> None:
        form = {
            "token": "sandbox",
            "team_id": self.slack.workspace.team_id,
            "team_domain": "sandbox",
            "channel_id": self.channel,
            "channel_name": "sandbox",
            "user_id": self.person.id,
            "user_name": self.person.name,
            "command": command,
            "text": text,
            "api_app_id": "A0SANDBOX",
            "trigger_id": self.trigger_id(),
            "response_url": self.slack.new_response_url(channel=self.channel, user=self.person.id),
        }
        await self.send(urllib.parse.urlencode(form))
        await self.settle()

    def newest_with_buttons(self, ephemeral_ok: bool = True) -> Any:
        for message in reversed(self.slack.messages):
            if message.deleted or not buttons_of(message.blocks or []):
                continue
            if message.ephemeral_to and (
                not ephemeral_ok or message.ephemeral_to != self.person.id
            ):
                continue
            return message
        raise ConsoleError("no message with buttons to act on")

    def pick_button(self, message: Any, which: str) -> dict[str, Any]:
        buttons = buttons_of(message.blocks or [])
        if which.isdigit() and 1 <= int(which) <= len(buttons):
            return buttons[int(which) - 1]
        for element in buttons:
            if str(element.get("text", {}).get("text", "")).lower() == which.lower():
                return element
        labels = ", ".join(str(b.get("text", {}).get("text", "")) for b in buttons)
        raise ConsoleError(f"no button {which!r} on the newest prompt; it has: {labels}")

    async def click(self, which: str) -> None:
        message = self.newest_with_buttons()
        button = self.pick_button(message, which)
        payload = {
            "type": "block_actions",
            "api_app_id": "A0SANDBOX",
            "token": "sandbox",
            "user": {
                "id": self.person.id,
                "username": self.person.name,
                "team_id": self.slack.workspace.team_id,
            },
            "team": {"id": self.slack.workspace.team_id, "domain": "sandbox"},
            "channel": {"id": message.channel, "name": message.channel},
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": bool(message.ephemeral_to),
            },
            "message": {
                "type": "message",
                "ts": message.ts,
                "text": message.text,
                "blocks": message.blocks,
                "user": message.user,
            },
            "trigger_id": self.trigger_id(),
            "response_url": self.slack.new_response_url(
                channel=message.channel, user=self.person.id, message_ts=message.ts
            ),
            "actions": [
                {
                    "type": "button",
                    "action_id": button["action_id"],
                    "block_id": button.get("block_id", "b"),
                    "value": button.get("value", ""),
                    "text": button["text"],
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        await self.send(urllib.parse.urlencode({"payload": json.dumps(payload)}))
        await self.settle()

    async def react(self, emoji: str, *, added: bool) -> None:
        message = self.newest_with_buttons(ephemeral_ok=False)
        name = emoji.strip(":")
        event = {
            "type": "reaction_added" if added else "reaction_removed",
            "user": self.person.id,
            "reaction": name,
            "item_user": message.user,
            "item": {"type": "message", "channel": message.channel, "ts": message.ts},
            "event_ts": f"{time.time():.6f}",
        }
        body = {
            "token": "sandbox",
            "team_id": self.slack.workspace.team_id,
            "api_app_id": "A0SANDBOX",
            "type": "event_callback",
            "event": event,
            "event_id": f"Ev{next(self.ids):08d}",
            "event_time": int(time.time()),
        }
        await self.send(json.dumps(body), content_type="application/json")
        await self.settle()

    async def send(self, body: str, content_type: str | None = None) -> None:
        headers = signed_headers(self.signing_secret, body, content_type=content_type)
        try:
            async with self.session.post(
                f"{self.bot_url}/slack/events", data=body.encode(), headers=headers
            ) as response:
                if response.status >= 400:
                    raise ConsoleError(f"the bot answered HTTP {response.status}")
        except aiohttp.ClientError as exc:
            raise ConsoleError(f"the bot did not answer: {exc}") from exc

    async def webhook(self, file: str) -> None:
        if not file:
            raise ConsoleError("webhook takes a JSON file, e.g. `webhook pipeline.json`")
        try:
            answer = await replay(self.session, self.bot_url, Path(file), self.webhook_token)
        except ReplayError as exc:
            raise ConsoleError(str(exc)) from None
        self.transcript.say(f"(GitLab delivered {answer})")
        await self.settle()

    async def settle(self) -> None:
        """Let the bot finish its reaction to the last line: wait until it has no command
        work in flight and Slack has been quiet for a moment."""
        started = time.monotonic()
        self.touch()
        while time.monotonic() - started < SETTLE_LIMIT:
            await asyncio.sleep(0.05)
            if self.busy():
                self.touch()
            elif time.monotonic() - self.last_activity >= QUIET_PERIOD:
                return

    async def wait(self, rest: str) -> None:
        if rest.startswith("until "):
            await self.wait_until(rest[len("until ") :].strip())
            return
        try:
            seconds = float(rest)
        except ValueError:
            raise ConsoleError("wait takes seconds (`wait 2`) or `wait until TEXT`") from None
        seconds = max(0.0, min(seconds, 600.0))
        self.transcript.say(f"(waiting {seconds:g} s; lines typed meanwhile run after)")
        await asyncio.sleep(seconds)

    async def wait_until(self, text: str) -> None:
        def shown() -> bool:
            return any(
                text in self.transcript.entry(m, "posted")
                for m in self.slack.messages
                if self.fresh(m)
            )

        if not shown():
            self.transcript.say(
                f"(waiting up to {self.wait_timeout:g} s for {text!r}; "
                "lines typed meanwhile run after)"
            )

        try:
            await self.slack.wait_for(shown, timeout=self.wait_timeout)
        except TimeoutError:
            raise ConsoleError(
                f"timed out after {self.wait_timeout:g}s waiting for {text!r}"
            ) from None
