"""Small Block Kit helpers and the neutral message type views return."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Block = dict[str, Any]
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
ZWJ = "\u200d"
GRAVE = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT: looks like a backtick, is not markup


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


def escape(text: str, *, in_code: bool = False) -> str:
    """Every user-supplied string (reasons, refs, params, dataset names, image tags, error texts
    that quote input, ...) goes through here before it is put into mrkdwn.

    * Slack's three control characters become entities (``&amp;``, ``&lt;``, ``&gt;``), so
      nothing typed can become a mention (``<!channel>``, ``<@U...>``), a link or a date token.
    * A backtick becomes U+02CB (a look-alike that is not markup): no code span or block can
      be opened or closed by input, inside code or out of it.
    * Outside code (``in_code=False``), each of ``*``, ``_``, ``~`` is wrapped in zero-width
      joiners (U+200D). Slack only takes such a character as a marker when it opens before a
      non-space or closes after one and stands at a word edge on its other side; with a joiner
      on both sides neither holds, whether Slack reads the joiner as a space or as a letter.
      The text looks the same. Inside a code span or block (``in_code=True``) those characters
      are plain already and are left alone, so refs and tags copy as typed.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("`", GRAVE)
    if not in_code:
        for ch in "*_~":
            text = text.replace(ch, f"{ZWJ}{ch}{ZWJ}")
    return text


def code(text: str) -> str:
    """A user-supplied value as an inline code span (``""`` when empty)."""
    return f"`{escape(text, in_code=True)}`" if text else '""'


def user(user_id: str) -> str:
    """A mention for a Slack user id; anything else (say "deploy #7") as escaped text."""
    return f"<@{user_id}>" if USER_ID.match(user_id) else escape(user_id)
