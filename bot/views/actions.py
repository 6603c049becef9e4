"""Action ids of every button the bot renders, and the validated value each carries."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ActionId(StrEnum):
    UNLOCK = "lock.release"


class EnvTarget(BaseModel):
    """Button value naming a model environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=64)
    env: str = Field(min_length=1, max_length=64)
