"""Errors the store raises on purpose; both are safe to show to a user."""

from __future__ import annotations

from bot.errors import BotError


class StoreNotReady(BotError):
    """The database schema is not the version this bot was built for."""

    kind = "store_not_ready"


class StoreTimeout(BotError, TimeoutError):
    """The database did not answer in time (still a ``TimeoutError`` for generic handlers)."""

    kind = "store_timeout"
