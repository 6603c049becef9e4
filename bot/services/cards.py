"""One Slack message per thing: the first publish posts it, later ones edit it in place."""

from __future__ import annotations

from typing import Protocol

from bot.domain import CardRef
from bot.ports import Chat
from bot.views.blocks import Message


class CardStore(Protocol):
    async def save_card(self, ref: CardRef) -> None: ...

    async def get_card(self, key: str) -> CardRef | None: ...


class Cards:
    def __init__(self, store: CardStore, chat: Chat) -> None:
        self.store = store
        self.chat = chat

    async def publish(self, key: str, channel: str, message: Message) -> CardRef:
        """Post the card the first time; afterwards edit it (edits are coalesced by the chat)."""
        ref = await self.store.get_card(key)
        if ref is None:
            return await self.repost(key, channel, message)
        self.chat.edit(ref.channel, ref.ts, message.text, message.blocks)
        return ref

    async def repost(self, key: str, channel: str, message: Message) -> CardRef:
        """Start a fresh card for ``key`` (the old message, if any, stays as history)."""
        posted_channel, ts = await self.chat.post(channel, message.text, message.blocks)
        ref = CardRef(key=key, channel=posted_channel, ts=ts)
        await self.store.save_card(ref)
        return ref
