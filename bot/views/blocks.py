"""Small Block Kit helpers and the neutral message type views return."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Block = dict[str, Any]
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


@dataclass(frozen=True)
class Message:
    """What a view produces: fallback text plus blocks."""

    text: str
    blocks: list[Block] = field(default_factory=list)


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def button(label: str, action_id: str, value: dict[str, Any], style: str | None = None) -> Block:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": json.dumps(value, separators=(",", ":")),
    }
    if style:
        element["style"] = style
    return element


def actions(*buttons: Block) -> Block:
    return {"type": "actions", "elements": list(buttons)}


def when(at: datetime) -> str:
    """A Slack date token that each reader sees in their own time zone."""
    stamp = int(at.timestamp())
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{fallback}>"


def user(user_id: str) -> str:
    """A mention for a Slack user id; anything else (say "deploy #7") as plain text."""
    return f"<@{user_id}>" if USER_ID.match(user_id) else user_id
