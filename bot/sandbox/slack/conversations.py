"""conversations.*: a channel's details and a thread's replies."""

from __future__ import annotations

from typing import Any

from bot.sandbox.slack.args import Handler, required_arg, text_arg
from bot.sandbox.slack.state import Workspace


class Conversations:
    """The conversations.* methods, as the bot (a member of every channel) sees them."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def methods(self) -> dict[str, Handler]:
        return {
            "conversations.info": self._conversations_info,
            "conversations.replies": self._replies,
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
        messages = [ws.message_json(root), *(ws.message_json(m) for m in replies)]
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
