"""How the bot itself runs: its store, HTTP server, card edits and group cache."""

from __future__ import annotations

from pydantic import Field

from bot.config.base import Strict


class StoreSettings(Strict):
    url: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class ServerSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)


class NotifierSettings(Strict):
    edit_interval_seconds: float = Field(default=1.0, ge=0, le=60)


class PolicySettings(Strict):
    group_cache_seconds: float = Field(default=300.0, ge=0)
