"""The seams services need; integrations implement them, only bot/app.py wires them."""

from __future__ import annotations

from typing import Any, Protocol

Blocks = list[dict[str, Any]]


class Chat(Protocol):
    """Posting and editing messages; implemented by bot.notifier.Notifier."""

    async def post(
        self, channel: str, text: str, blocks: Blocks | None = None, *, thread_ts: str | None = None
    ) -> tuple[str, str]: ...

    def edit(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> None: ...

    async def ephemeral(
        self, channel: str, user: str, text: str, blocks: Blocks | None = None
    ) -> None: ...

    async def respond(
        self,
        response_url: str,
        text: str,
        blocks: Blocks | None = None,
        *,
        replace_original: bool = False,
    ) -> None: ...


class Directory(Protocol):
    """Who is in which Slack user group; implemented by integrations.slack.SlackDirectory."""

    async def group_members(self, group_id: str) -> frozenset[str]: ...
