"""One Slack message per thing: the first publish posts it, later ones edit it in place."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Protocol

from bot.domain.cards import CardRef
from bot.ports import Chat
from bot.views.blocks import Message


class CardStore(Protocol):
    async def save_card(self, ref: CardRef) -> None: ...

    async def get_card(self, key: str) -> CardRef | None: ...


class Cards:
    def __init__(self, store: CardStore, chat: Chat) -> None:
        self.store = store
        self.chat = chat
        self.shown: dict[str, Message] = {}
        self.posting: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def publish(self, key: str, channel: str, message: Message) -> CardRef:
        """Post the card the first time; afterwards edit it (edits are coalesced by the chat),
        and skip edits that would show what the card already shows."""
        async with self.posting[key]:
            ref = await self.store.get_card(key)
            if ref is None:
                return await self.repost(key, channel, message)
        if self.shown.get(key) != message:
            self.shown[key] = message
            self.chat.edit(ref.channel, ref.ts, message.text, message.blocks)
        return ref

    async def repost(self, key: str, channel: str, message: Message) -> CardRef:
        """Start a fresh card for ``key`` (the old message, if any, stays as history)."""
        posted_channel, ts = await self.chat.post(channel, message.text, message.blocks)
        ref = CardRef(key=key, channel=posted_channel, ts=ts)
        await self.store.save_card(ref)
        self.shown[key] = message
        return ref

    async def reply(self, key: str, message: Message) -> tuple[str, str] | None:
        """Post ``message`` in the card's thread (for example a failure's log tail); returns
        where the reply is, so that it can be edited."""
        ref = await self.store.get_card(key)
        if ref is None:
            return None
        return await self.chat.post(ref.channel, message.text, message.blocks, thread_ts=ref.ts)
