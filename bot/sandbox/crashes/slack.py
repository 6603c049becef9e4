"""Slack's side of a trial: signed commands and clicks sent to the bot, and the response_urls
that catch its replies (one per command, so replies can be counted per command)."""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox.people import HOME_CHANNEL, SIGNING_SECRET, Person
from bot.sandbox.signing import signed_headers
from bot.sandbox.slack import SlackStandIn
from bot.sandbox.slack.state import Message

TEAM = "T0SANDBOX"


class ReplyCatcher:
    """An HTTP server standing in for Slack's response_url endpoint: it keeps what the bot
    posts to each URL, by the id of the command or click that carried it."""

    def __init__(self) -> None:
        self.replies: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/response/{id}", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _post(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.replies[request.match_info["id"]].append(payload)
        return web.Response(text="ok")


@dataclass
class Sent:
    """One command or click: its body, whether the bot acked it, and where its replies go."""

    id: str
    body: str
    content_type: str | None
    label: str = ""  # "/deploy fraud stg", "click Approve"
    acked: bool = False
    tries: int = 0


@dataclass
class SlackSide:
    """Sends what Slack sends on behalf of people; a send the bot did not ack is kept so the
    person can try again after the bot is back."""

    slack: SlackStandIn
    catcher: ReplyCatcher
    bot_url: str
    session: aiohttp.ClientSession
    sent: list[Sent] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def response_url(self, sent_id: str) -> str:
        return f"{self.catcher.url}/response/{sent_id}"

    async def command(self, person: Person, command: str, text: str) -> Sent:
        sent_id = f"c{next(self.ids)}"
        form = {
            "token": "sandbox",
            "team_id": TEAM,
            "team_domain": "sandbox",
            "channel_id": HOME_CHANNEL,
            "channel_name": "sandbox",
            "user_id": person.id,
            "user_name": person.name,
            "command": command,
            "text": text,
            "api_app_id": "A0SANDBOX",
            "trigger_id": f"{int(time.time())}.{sent_id}.crash",
            "response_url": self.response_url(sent_id),
        }
        body = urllib.parse.urlencode(form)
        return await self.send(Sent(sent_id, body, None, label=f"{command} {text}"))

    async def click(self, person: Person, message: Message, label: str) -> Sent:
        """Click the button labelled ``label`` on ``message`` (a card in a channel)."""
        button = button_of(message, label)
        sent_id = f"a{next(self.ids)}"
        payload = {
            "type": "block_actions",
            "api_app_id": "A0SANDBOX",
            "token": "sandbox",
            "user": {"id": person.id, "username": person.name, "team_id": TEAM},
            "team": {"id": TEAM, "domain": "sandbox"},
            "channel": {"id": message.channel, "name": message.channel},
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
            },
            "message": {"type": "message", "ts": message.ts, "text": message.text},
            "trigger_id": f"{int(time.time())}.{sent_id}.crash",
            "response_url": self.response_url(sent_id),
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
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        return await self.send(Sent(sent_id, body, None, label=f"click {label}"))

    async def send(self, sent: Sent) -> Sent:
        """POST it to /slack/events as Slack does; acked means the bot answered 200."""
        if sent not in self.sent:
            self.sent.append(sent)
        sent.tries += 1
        headers = signed_headers(SIGNING_SECRET, sent.body, content_type=sent.content_type)
        try:
            async with self.session.post(
                f"{self.bot_url}/slack/events", data=sent.body.encode(), headers=headers
            ) as response:
                await response.read()
                sent.acked = sent.acked or response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            pass
        return sent

    def replies(self, sent: Sent) -> list[dict[str, Any]]:
        return self.catcher.replies.get(sent.id, [])


def button_of(message: Message, label: str) -> dict[str, Any]:
    for block in message.blocks or []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if str(element.get("text", {}).get("text", "")).lower() == label.lower():
                return dict(element)
    raise LookupError(f"no button {label!r} on message {message.ts}")
