"""reactions.*: the bot adds and removes its emoji reactions, and reads a message's."""

from __future__ import annotations

from typing import Any

from bot.sandbox.slack.args import Handler, required_arg, text_arg
from bot.sandbox.slack.state import Message, SlackError, Workspace


class Reactions:
    """The reactions.* methods, acting as the bot user."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def methods(self) -> dict[str, Handler]:
        return {
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "reactions.get": self._reactions_get,
        }

    def _reacted(self, args: dict[str, Any]) -> tuple[Message, str]:
        channel_id = self.workspace.channel_id(text_arg(args, "channel"))
        message = self.workspace.find(channel_id, required_arg(args, "timestamp"))
        name = (text_arg(args, "name") or "").strip(":")
        if not name:
            raise SlackError("invalid_name")
        return message, name

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        message, name = self._reacted(args)
        users = message.reactions.setdefault(name, [])
        if self.workspace.bot_user_id in users:
            raise SlackError("already_reacted")
        users.append(self.workspace.bot_user_id)
        return {"ok": True}

    def _reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        message, name = self._reacted(args)
        users = message.reactions.get(name, [])
        if self.workspace.bot_user_id not in users:
            raise SlackError("no_reaction")
        users.remove(self.workspace.bot_user_id)
        if not users:
            del message.reactions[name]
        return {"ok": True}

    def _reactions_get(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(text_arg(args, "channel"))
        message = ws.find(channel_id, required_arg(args, "timestamp"))
        return {
            "ok": True,
            "type": "message",
            "channel": channel_id,
            "message": ws.message_json(message),
        }
