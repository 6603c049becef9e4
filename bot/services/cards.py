"""One Slack message per thing: publishing records what the card should show; the outbox's
reconciler posts it the first time and edits it afterwards, however long Slack takes."""

from __future__ import annotations

import hashlib

from bot.domain.cards import CardRef
from bot.ports import Chat
from bot.store import Store
from bot.views.blocks import Message

Reply = tuple[str, str]
"""A thread reply's handle: (the card's key, the reply's key)."""


def reply_key(card: str, message: Message) -> str:
    """A reply named by what it first said, so that saying it again is the same reply."""
    digest = hashlib.sha256(message.text.encode()).hexdigest()[:12]
    return f"{card}:reply:{digest}"


class Cards:
    def __init__(self, store: Store, chat: Chat) -> None:
        self.store = store
        self.chat = chat
        self.shown: dict[str, Message] = {}

    async def publish(self, key: str, channel: str, message: Message) -> CardRef:
        """Record the card's state (never waits for Slack), skipping states that would show
        what the card already shows. The ref's ``ts`` is empty until the message exists."""
        if self.shown.get(key) != message:
            await self.chat.show_card(key, channel, message.text, message.blocks)
            self.shown[key] = message
        return await self.store.get_card(key) or CardRef(key, channel, "")

    async def repost(self, key: str, channel: str, message: Message) -> CardRef:
        """Start a fresh card for ``key`` (the old message, if any, stays as history)."""
        await self.chat.show_card(key, channel, message.text, message.blocks, fresh=True)
        self.shown[key] = message
        return CardRef(key, channel, "")

    async def reply(self, key: str, message: Message, *, name: str | None = None) -> Reply | None:
        """Put ``message`` in the card's thread once: the reply is keyed by ``name`` (default:
        by its text), so a restart that says it again finds the same reply. Returns the handle
        that ``revise`` takes, or None when there is no such card."""
        card = await self.store.cards.get(key)
        if card is None:
            return None
        reply = f"{key}:{name}" if name else reply_key(key, message)
        await self.chat.show_card(reply, card.channel, message.text, message.blocks, parent=key)
        return key, reply

    def revise(self, reply: Reply, message: Message) -> None:
        """Change a reply's text without waiting (coalesced: the latest text wins)."""
        self.chat.revise_card(reply[1], message.text, message.blocks)
