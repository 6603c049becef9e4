"""Per-model settings: channel, project, owners, training, environments and role bindings."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BeforeValidator, Field, model_validator

from bot.config.ab import AbConfig
from bot.config.base import Strict
from bot.config.deploy import DeployGates, ModelDeploy
from bot.config.monitoring import MonitoringConfig
from bot.config.training import TrainingConfig
from bot.domain.access import Role

SUBJECT_PATTERN = r"^[UWS][A-Z0-9]{2,}$"
Subject = Annotated[str, Field(pattern=SUBJECT_PATTERN)]
"""A Slack user id (U..., W...) or a Slack user group id (S...)."""

RoleBindings = dict[Role, list[Subject]]


def _listed(value: object) -> object:
    """``owners`` was once one user group: a single id still reads as a list of one."""
    return [value] if isinstance(value, str) else ([] if value is None else value)


Owners = Annotated[list[Subject], BeforeValidator(_listed)]


class EnvironmentConfig(DeployGates):
    approvals: int = Field(default=0, ge=0)
    approvers: list[Subject] = Field(default_factory=list)
    requires: str | None = None
    roles: RoleBindings = Field(default_factory=dict)
    ab: AbConfig | None = None


class ModelConfig(Strict):
    channel: str = Field(pattern=r"^(C[A-Z0-9]{2,}|#?[a-z0-9][a-z0-9_-]{0,79})$")
    gitlab_project: str | None = None
    owners: Owners = Field(default_factory=list)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    environments: dict[str, EnvironmentConfig] = Field(default_factory=dict)
    roles: RoleBindings = Field(default_factory=dict)
    deploy: ModelDeploy = Field(default_factory=ModelDeploy)
    monitoring: MonitoringConfig | None = None

    @model_validator(mode="after")
    def monitors_known_environments(self) -> Self:
        unknown = self.monitoring.unknown_environments(self.environments) if self.monitoring else []
        if unknown:
            known = ", ".join(self.environments) or "none"
            raise ValueError(f"monitoring of unknown environments {unknown}; environments: {known}")
        return self
