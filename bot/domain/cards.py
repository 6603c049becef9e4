"""Where a card lives in Slack: the stable key of a thing and its message."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CardRef:
    """Where a card lives in Slack: edits go to this channel and timestamp."""

    key: str
    channel: str
    ts: str
