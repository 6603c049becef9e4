"""chat.*: the bot posts, updates, posts ephemerally, deletes and links its messages."""

from __future__ import annotations

from typing import Any

from bot.sandbox.slack.args import Emit, Handler, required_arg, text_arg
from bot.sandbox.slack.state import (
    SlackError,
    Workspace,
    check_text,
    parse_blocks,
    parse_metadata,
)


class Chat:
    """The chat.* methods; each change to a message is announced through ``emit``."""

    def __init__(self, workspace: Workspace, emit: Emit) -> None:
        self.workspace = workspace
        self._emit = emit

    def methods(self) -> dict[str, Handler]:
        return {
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.delete": self._delete,
            "chat.getPermalink": self._permalink,
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(text_arg(args, "channel"))
        blocks = parse_blocks(args.get("blocks"))
        text = text_arg(args, "text") or ""
        check_text(text, blocks)
        metadata = parse_metadata(args.get("metadata"))
        message = ws.new(channel_id, text, blocks)
        message.thread_ts = text_arg(args, "thread_ts")
        message.metadata = metadata
        ws.add(message)
        self._emit(message, "posted")
        return {
            "ok": True,
            "channel": channel_id,
            "ts": message.ts,
            "message": ws.message_json(message),
        }

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(text_arg(args, "channel"))
        message = ws.find(channel_id, required_arg(args, "ts"))
        if message.user != ws.bot_user_id:
            raise SlackError("cant_update_message")
        blocks = parse_blocks(args.get("blocks"))
        text = text_arg(args, "text") or ""
        check_text(text, blocks if blocks is not None else message.blocks)
        metadata = parse_metadata(args.get("metadata"))
        message.text = text
        if metadata is not None:
            message.metadata = metadata
        if blocks is not None or "blocks" in args:
            message.blocks = blocks or None
        message.edited += 1
        self._emit(message, "edited")
        return {
            "ok": True,
            "channel": channel_id,
            "ts": message.ts,
            "text": message.text,
            "message": ws.message_json(message),
        }

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(text_arg(args, "channel"))
        user = ws.user(required_arg(args, "user"))
        blocks = parse_blocks(args.get("blocks"))
        text = text_arg(args, "text") or ""
        check_text(text, blocks)
        message = ws.new(channel_id, text, blocks)
        message.ephemeral_to, message.thread_ts = user.id, text_arg(args, "thread_ts")
        ws.add(message)
        self._emit(message, "ephemeral")
        return {"ok": True, "message_ts": message.ts}

    def _delete(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(text_arg(args, "channel"))
        message = ws.find(channel_id, required_arg(args, "ts"))
        if message.user != ws.bot_user_id:
            raise SlackError("cant_delete_message")
        message.deleted = True
        self._emit(message, "deleted")
        return {"ok": True, "channel": channel_id, "ts": message.ts}

    def _permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self.workspace.channel_id(text_arg(args, "channel"))
        message = self.workspace.find(channel_id, required_arg(args, "message_ts"))
        link = f"https://sandbox.slack.com/archives/{channel_id}/p{message.ts.replace('.', '')}"
        return {"ok": True, "channel": channel_id, "permalink": link}
