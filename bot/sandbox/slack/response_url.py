"""response_url: where a slash command or a click posts, replaces or deletes its answer."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from bot.sandbox.slack.args import Emit, flag_arg
from bot.sandbox.slack.state import Message, Workspace, check_text, parse_blocks


@dataclass
class ResponseTarget:
    """Where a response_url posts land; ``last_ts`` is what ``replace_original`` replaces."""

    channel: str
    user: str
    last_ts: str | None


class ResponseUrls:
    """The response_urls handed out, by token, and what a post to one does to the channel."""

    def __init__(self, workspace: Workspace, emit: Emit) -> None:
        self.workspace = workspace
        self._emit = emit
        self._targets: dict[str, ResponseTarget] = {}

    def new(
        self, *, channel: str | None = None, user: str | None = None, message_ts: str | None = None
    ) -> str:
        """A fresh token for ``user`` in ``channel``; the server puts it in the URL."""
        ws = self.workspace
        channel_id = ws.channel_id(channel or next(iter(ws.channels)))
        user_id = user or next(u for u in ws.users if u != ws.bot_user_id)
        token = secrets.token_urlsafe(12)
        self._targets[token] = ResponseTarget(channel_id, user_id, message_ts)
        return token

    def target(self, token: str) -> ResponseTarget | None:
        return self._targets.get(token)

    def respond(self, target: ResponseTarget, payload: dict[str, Any]) -> None:
        ws = self.workspace
        original = _original(ws.messages, target)
        if flag_arg(payload, "delete_original"):
            if original is not None:
                original.deleted = True
                self._emit(original, "deleted")
            return
        blocks = parse_blocks(payload.get("blocks"))
        text = str(payload.get("text") or "")
        check_text(text, blocks)
        if flag_arg(payload, "replace_original") and original is not None:
            original.text, original.blocks = text, blocks
            original.edited += 1
            self._emit(original, "edited")
            return
        message = ws.new(target.channel, text, blocks)
        message.response_type = str(payload.get("response_type") or "ephemeral")
        if message.response_type != "in_channel":
            message.ephemeral_to = target.user
        target.last_ts = ws.add(message).ts
        self._emit(message, "ephemeral" if message.ephemeral_to else "posted")


def _original(messages: list[Message], target: ResponseTarget) -> Message | None:
    for message in messages:
        if message.channel == target.channel and message.ts == target.last_ts:
            return message
    return None
