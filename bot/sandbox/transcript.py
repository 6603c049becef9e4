"""Prints what the bot posts or edits as readable text: channel, author, text, blocks, buttons."""

from __future__ import annotations

import re
from typing import Any, Protocol, TextIO

DATE_TOKEN = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")


class SeenMessage(Protocol):
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None
    ephemeral_to: str | None


def block_lines(block: dict[str, Any], buttons: list[str]) -> list[str]:
    kind = block.get("type")
    if kind == "section":
        text = str(block.get("text", {}).get("text", ""))
        fields = [str(f.get("text", "")) for f in block.get("fields", [])]
        return [*text.splitlines(), *fields]
    if kind == "context":
        return ["  " + " ".join(str(e.get("text", "")) for e in block.get("elements", []))]
    if kind == "header":
        return [str(block.get("text", {}).get("text", "")).upper()]
    if kind == "divider":
        return ["  ---"]
    if kind == "actions":
        labels = []
        for element in block.get("elements", []):
            buttons.append(str(element.get("text", {}).get("text", "")))
            labels.append(f"[{len(buttons)}: {buttons[-1]}]")
        return ["  " + " ".join(labels)]
    return [f"  ({kind} block)"]


def buttons_of(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") == "actions":
            found.extend(e for e in block.get("elements", []) if e.get("type") == "button")
    return found


class Transcript:
    """Writes one entry per post/edit/ephemeral; user ids are shown as @names."""

    def __init__(self, out: TextIO, names: dict[str, str], channels: dict[str, str]) -> None:
        self.out = out
        self.names = names
        self.channels = channels

    def who(self, user_id: str) -> str:
        return "@" + self.names.get(user_id, user_id)

    def readable(self, text: str) -> str:
        """Slack markup as a person reads it: @names, and date tokens as their fallback text."""
        for user_id, name in self.names.items():
            text = text.replace(f"<@{user_id}>", f"@{name}")
        return DATE_TOKEN.sub(lambda m: m.group(1), text)

    def entry(self, message: SeenMessage, kind: str) -> str:
        channel = "#" + self.channels.get(message.channel, message.channel)
        marks = []
        if message.ephemeral_to:
            marks.append(f"ephemeral, only {self.who(message.ephemeral_to)} sees it")
        if kind == "edited":
            marks.append("edited")
        if kind == "deleted":
            marks.append("deleted")
        head = f"[{channel}] {self.who(message.user)}" + (f" ({', '.join(marks)})" if marks else "")
        buttons: list[str] = []
        lines: list[str] = []
        for block in message.blocks or []:
            lines.extend(block_lines(block, buttons))
        if not lines:
            lines = message.text.splitlines()
        body = "\n".join("  " + self.readable(line) for line in lines)
        return f"{head}\n{body}\n"

    def write(self, message: SeenMessage, kind: str) -> None:
        self.out.write(self.entry(message, kind))
        self.out.flush()

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()
