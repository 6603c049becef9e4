"""Where a card lives in Slack: the stable key of a thing and its message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class CardRef:
    """Where a card lives in Slack: edits go to this channel and timestamp."""

    key: str
    channel: str
    ts: str


@dataclass(frozen=True)
class CardState:
    """What a card should show (the outbox row) and where Slack shows it, once known.

    ``version`` counts the states asked for and ``synced`` the one Slack shows; ``parent`` is
    the key of the card a thread reply belongs to; ``generation`` counts fresh posts of the key.
    """

    key: str
    channel: str
    text: str
    blocks: list[dict[str, Any]] | None
    version: int
    synced: int
    generation: int
    created_at: datetime
    parent: str | None = None
    attempts: int = 0
    claims: int = 0
    error: str | None = None
    where: CardRef | None = None

    @property
    def dirty(self) -> bool:
        return self.synced < self.version
