"""The Slack stand-in's workspace: users, channels, groups and messages, and their JSON shapes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT = 40_000
MAX_BLOCKS = 50
MAX_METADATA = 8_000


class SlackError(Exception):
    """A Web API error: answered as ``{"ok": false, "error": code, **extra}``."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"ok": False, "error": self.code, **self.extra}


def missing(arg: str) -> SlackError:
    """Slack's answer when a required argument is absent."""
    messages = [f"[ERROR] missing required field: {arg}"]
    return SlackError("invalid_arguments", response_metadata={"messages": messages})


@dataclass
class SlackUser:
    id: str
    name: str
    real_name: str = ""
    is_admin: bool = False


@dataclass
class Message:
    """One message as people in the channel see it; updates change it in place."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    edited: int = 0
    deleted: bool = False
    ephemeral_to: str | None = None
    response_type: str | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    files: list[dict[str, Any]] | None = None  # shared by files.completeUploadExternal

    def to_json(
        self, team_id: str, bot_id: str | None = None, *, with_metadata: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "message",
            "user": self.user,
            "text": self.text,
            "ts": self.ts,
            "team": team_id,
        }
        if bot_id is not None:
            body["bot_id"] = bot_id
        if self.edited:
            body["edited"] = {"user": self.user, "ts": self.ts}
        if self.blocks is not None:
            body["blocks"] = self.blocks
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
        if with_metadata and self.metadata is not None:
            body["metadata"] = self.metadata
        if self.files:
            body["files"], body["upload"] = self.files, True
        if self.reactions:
            body["reactions"] = [
                {"name": name, "users": users, "count": len(users)}
                for name, users in self.reactions.items()
            ]
        return body


def parse_blocks(raw: Any) -> list[dict[str, Any]] | None:
    """Validate ``blocks`` as Slack does: a JSON array of objects that each name a ``type``."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise SlackError("invalid_blocks_format") from None
    if not isinstance(raw, list):
        raise SlackError("invalid_blocks_format")
    errors = [
        f"missing required field: type [json-pointer:/blocks/{i}]"
        for i, block in enumerate(raw)
        if not isinstance(block, dict) or not isinstance(block.get("type"), str)
    ]
    if len(raw) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    if errors:
        metadata = {"messages": [f"[ERROR] {e}" for e in errors]}
        raise SlackError("invalid_blocks", errors=errors, response_metadata=metadata)
    return raw


def check_text(text: str, blocks: list[dict[str, Any]] | None) -> None:
    if not text and not blocks:
        raise SlackError("no_text")
    if len(text) > MAX_TEXT:
        raise SlackError("msg_too_long")


def parse_metadata(raw: Any) -> dict[str, Any] | None:
    """Validate ``metadata`` as Slack does: an object with an ``event_type`` string and an
    ``event_payload`` object (JSON text or, in a JSON body, the object itself)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise SlackError("invalid_metadata_format") from None
    if not isinstance(raw, dict):
        raise SlackError("invalid_metadata_format")
    if not isinstance(raw.get("event_type"), str) or not isinstance(raw.get("event_payload"), dict):
        raise SlackError("invalid_metadata_schema")
    if len(json.dumps(raw)) > MAX_METADATA:
        raise SlackError("metadata_too_large")
    return {"event_type": raw["event_type"], "event_payload": raw["event_payload"]}


class Clock:
    """Slack-style ``ts`` strings from the wall clock: unique and increasing,
    ``"1700000000.000100"`` (``start`` pins the first one, for repeatable transcripts)."""

    def __init__(self, start: float | None = None) -> None:
        self._start = start
        self._last = 0

    def next_ts(self) -> str:
        base = self._start if self._start is not None else time.time()
        micros = max(int(base * 1_000_000), self._last + 100)
        self._last = micros
        seconds, rest = divmod(micros, 1_000_000)
        return f"{seconds}.{rest:06d}"


class Workspace:
    """Users, channels, user groups and the message history of one sandbox team."""

    def __init__(
        self,
        *,
        users: list[SlackUser],
        usergroups: dict[str, list[str]],
        handles: dict[str, str],
        channels: dict[str, str],
        team_id: str,
        bot_user_id: str,
    ) -> None:
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = "B" + bot_user_id[1:]
        self.users = {u.id: u for u in users}
        self.users.setdefault(bot_user_id, SlackUser(bot_user_id, "mlops-bot", "MLOps Bot"))
        self.usergroups = {gid: list(members) for gid, members in usergroups.items()}
        self.handles = {gid: handles.get(gid, gid.lower()) for gid in usergroups}
        self.channels = dict(channels)
        self.outside: set[str] = set()  # channels the bot is not a member of
        self.messages: list[Message] = []
        self.clock = Clock()

    def channel_id(self, ref: str | None) -> str:
        """Resolve ``C123``, ``#name`` or ``name`` as Slack does; a user id means their DM."""
        if not ref:
            raise missing("channel")
        if ref in self.channels:
            return ref
        name = ref.removeprefix("#")
        for channel_id, channel_name in self.channels.items():
            if channel_name == name:
                return channel_id
        if ref in self.users:
            dm = "D" + ref[1:]
            self.channels.setdefault(dm, self.users[ref].name)
            return dm
        raise SlackError("channel_not_found")

    def user(self, user_id: str | None) -> SlackUser:
        user = self.users.get(user_id or "")
        if user is None:
            raise SlackError("user_not_found")
        return user

    def members(self, group_id: str | None) -> list[str]:
        if group_id not in self.usergroups:
            raise SlackError("no_such_subteam")
        return self.usergroups[group_id]

    def find(self, channel_id: str, ts: str | None) -> Message:
        """A message everyone in the channel can see (not deleted, not ephemeral)."""
        for message in self.messages:
            visible = message.ephemeral_to is None and not message.deleted
            if visible and message.channel == channel_id and message.ts == ts:
                return message
        raise SlackError("message_not_found")

    def add(self, message: Message) -> Message:
        if message.thread_ts is not None:
            message.thread_ts = self._thread_root(message.channel, message.thread_ts)
        self.messages.append(message)
        return message

    def new(self, channel_id: str, text: str, blocks: list[dict[str, Any]] | None) -> Message:
        return Message(channel_id, self.clock.next_ts(), self.bot_user_id, text, blocks)

    def thread(self, channel_id: str, ts: str | None) -> list[Message]:
        try:
            root = self.find(channel_id, ts)
        except SlackError:
            raise SlackError("thread_not_found") from None
        replies = [
            m
            for m in self.messages
            if m.channel == channel_id
            and m.thread_ts == root.ts
            and m is not root
            and m.ephemeral_to is None
            and not m.deleted
        ]
        return [root, *replies]

    def message_json(self, message: Message, *, with_metadata: bool = False) -> dict[str, Any]:
        bot_id = self.bot_id if message.user == self.bot_user_id else None
        return message.to_json(self.team_id, bot_id, with_metadata=with_metadata)

    def _thread_root(self, channel_id: str, ts: str) -> str:
        """Replies to a reply land in the parent's thread, as in Slack."""
        for message in self.messages:
            if message.channel == channel_id and message.ts == ts and message.thread_ts:
                return message.thread_ts
        return ts
