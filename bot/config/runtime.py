"""How the bot itself runs: its store, HTTP server, card edits and group cache."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from bot.config.base import Strict


class StoreSettings(Strict):
    url: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    leader_lease_seconds: float = Field(default=10.0, ge=2, le=600)
    leader_renew_seconds: float = Field(default=2.0, gt=0, le=300)
    claim_lease_seconds: float = Field(default=10.0, ge=3, le=3600)

    @model_validator(mode="after")
    def renew_well_within_lease(self) -> Self:
        if self.leader_renew_seconds * 2 > self.leader_lease_seconds:
            raise ValueError(
                f"store.leader_renew_seconds ({self.leader_renew_seconds:g}) must be at most "
                f"half of store.leader_lease_seconds ({self.leader_lease_seconds:g}), so that "
                "a renewal can fail once without losing the lease"
            )
        return self


class ServerSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)


class NotifierSettings(Strict):
    edit_interval_seconds: float = Field(default=1.0, ge=0, le=60)


class PolicySettings(Strict):
    group_cache_seconds: float = Field(default=300.0, ge=0)
