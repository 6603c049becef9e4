"""Action ids of every button the bot renders, and the validated value each carries."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ActionId(StrEnum):
    UNLOCK = "lock.release"
    APPROVE = "deploy.approve"
    REJECT = "deploy.reject"
    DEPLOY_RUN = "run.deploy"
    AB_APPROVE = "ab.approve"
    AB_REJECT = "ab.reject"
    INCIDENT_ROLLBACK = "incident.rollback"
    INCIDENT_ACKNOWLEDGE = "incident.acknowledge"
    INCIDENT_SNOOZE = "incident.snooze"


class EnvTarget(BaseModel):
    """Button value naming a model environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=64)
    env: str = Field(min_length=1, max_length=64)


class DeployTarget(BaseModel):
    """Button value naming one deployment (approve / reject)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deploy: int = Field(ge=1)


class RunTarget(BaseModel):
    """Button value of "Deploy to <env>" on a run card."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=64)
    env: str = Field(min_length=1, max_length=64)
    run: int = Field(ge=1)


class ChangeTarget(BaseModel):
    """Button value naming one pending A/B weight change (approve / reject)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    change: int = Field(ge=1)
