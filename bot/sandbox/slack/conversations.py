"""conversations.*: the channel list, a channel's details, its history and a thread's replies."""

from __future__ import annotations

import base64
from typing import Any, TypeVar

from bot.sandbox.slack.args import Handler, flag_arg, required_arg, text_arg
from bot.sandbox.slack.state import SlackError, Workspace

MAX_LIMIT = 999
T = TypeVar("T")


class Conversations:
    """The conversations.* methods, as the bot (a member of every channel) sees them."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def methods(self) -> dict[str, Handler]:
        return {
            "conversations.info": self._conversations_info,
            "conversations.replies": self._replies,
            "conversations.history": self._history,
            "conversations.list": self._list,
        }

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Newest first, between ``oldest`` and ``latest`` (exclusive unless ``inclusive``), a
        page of ``limit`` (default 100) with Slack's cursor; metadata only when asked."""
        ws = self.workspace
        channel_id = required_arg(args, "channel")
        if channel_id not in ws.channels:  # Slack wants the ID here, not a #name
            raise SlackError("channel_not_found")
        oldest = _ts_arg(args, "oldest", "invalid_ts_oldest", 0.0)
        latest = _ts_arg(args, "latest", "invalid_ts_latest", float("inf"))
        inclusive = flag_arg(args, "inclusive")
        visible = [
            m
            for m in reversed(ws.messages)
            if m.channel == channel_id
            and m.ephemeral_to is None
            and not m.deleted
            and (m.thread_ts is None or m.thread_ts == m.ts)
            and _within(float(m.ts), oldest, latest, inclusive)
        ]
        page, next_cursor = _page(visible, args)
        with_metadata = flag_arg(args, "include_all_metadata")
        return {
            "ok": True,
            "messages": [ws.message_json(m, with_metadata=with_metadata) for m in page],
            "has_more": bool(next_cursor),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _list(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        listed = [cid for cid in ws.channels if not cid.startswith("D")]
        page, next_cursor = _page(listed, args)
        return {
            "ok": True,
            "channels": [channel_json(cid, ws.channels[cid], ws.bot_user_id) for cid in page],
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(text_arg(args, "channel"))
        return {
            "ok": True,
            "channel": channel_json(channel_id, ws.channels[channel_id], ws.bot_user_id),
        }

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(text_arg(args, "channel"))
        root, *replies = ws.thread(channel_id, required_arg(args, "ts"))
        meta = flag_arg(args, "include_all_metadata")
        messages = [ws.message_json(m, with_metadata=meta) for m in (root, *replies)]
        if replies:
            reply_users = sorted({m.user for m in replies})
            messages[0].update(
                thread_ts=root.ts,
                reply_count=len(replies),
                latest_reply=replies[-1].ts,
                reply_users=reply_users,
                reply_users_count=len(reply_users),
            )
        return {
            "ok": True,
            "messages": messages,
            "has_more": False,
            "response_metadata": {"next_cursor": ""},
        }


def _ts_arg(args: dict[str, Any], key: str, error: str, default: float) -> float:
    raw = text_arg(args, key)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SlackError(error) from None


def _within(ts: float, oldest: float, latest: float, inclusive: bool) -> bool:
    if inclusive:
        return oldest <= ts <= latest
    return oldest < ts < latest


def _page(items: list[T], args: dict[str, Any]) -> tuple[list[T], str]:
    """One page from ``cursor`` (an opaque offset, as Slack's cursors are) of ``limit`` items."""
    raw_limit = text_arg(args, "limit") or "100"
    if not raw_limit.isdigit() or not 0 < int(raw_limit) <= MAX_LIMIT:
        raise SlackError("invalid_limit")
    limit = int(raw_limit)
    start = 0
    cursor = text_arg(args, "cursor")
    if cursor is not None:
        try:
            start = int(base64.b64decode(cursor.encode()).decode().removeprefix("offset:"))
        except ValueError:
            raise SlackError("invalid_cursor") from None
    page = items[start : start + limit]
    more = start + limit < len(items)
    next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
    return page, next_cursor


def channel_json(channel_id: str, name: str, creator: str) -> dict[str, Any]:
    is_im = channel_id.startswith("D")
    topic = {"value": "", "creator": "", "last_set": 0}
    body: dict[str, Any] = {
        "id": channel_id,
        "name": name,
        "name_normalized": name,
        "created": 1_700_000_000,
        "creator": creator,
        "is_channel": not is_im,
        "is_group": False,
        "is_im": is_im,
        "is_private": is_im,
        "is_archived": False,
        "is_general": False,
        "is_member": True,
        "topic": topic,
        "purpose": dict(topic),
    }
    if is_im:
        body["user"] = "U" + channel_id[1:]
    return body
