"""Ephemeral replies: help, errors with a correlation id, plain confirmations."""

from __future__ import annotations

from bot.errors import BotError
from bot.views.blocks import Message, context, section

ICONS = {
    "user_input": ":warning:",
    "not_allowed": ":no_entry:",
    "conflict": ":lock:",
    "not_found": ":mag:",
    "external": ":rotating_light:",
}


def error_reply(error: BotError | None, correlation_id: str) -> Message:
    """The one rendering of every error; unknown failures say so without internals."""
    if error is None:
        text = "Something failed inside the bot; it has been logged."
        icon = ":boom:"
    else:
        text, icon = str(error), ICONS.get(error.kind, ":warning:")
    return Message(
        text=f"{text} (ref {correlation_id})",
        blocks=[section(f"{icon} {text}"), context(f"ref `{correlation_id}`")],
    )


def info_reply(text: str) -> Message:
    return Message(text=text, blocks=[section(text)])
