"""Settings of /deploy: where images and ecspresso configs are, and each environment's gates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.config.base import Strict

EMOJI = r"^[a-z0-9_+\-']{1,64}$"


class EcspressoSettings(Strict):
    """The ecspresso CLI the bot runs (checked by `mlops-bot check-config`)."""

    path: str = "ecspresso"
    min_version: str = "2.4.0"
    timeout_seconds: float = Field(default=900.0, gt=0, le=7200)
    verify_seconds: float = Field(default=300.0, gt=0, le=7200)
    allow_external_plugin: bool = False


class DeploySource(Strict):
    """Where a model's ecspresso config lives; only operator-controlled places: a local
    directory shipped with the bot (a ConfigMap), or a protected branch of the model's GitLab
    repository (its default branch, or ``ref``), never the run's commit. ``path`` may use
    {model} and {env}."""

    kind: Literal["gitlab", "local"] = "local"
    path: str = "deploy/{env}"
    config: str = "ecspresso.yml"
    ref: str | None = Field(default=None, min_length=1, pattern=r"^[^\s*?\[~^:]+$")


class ModelDeploy(Strict):
    """How a run becomes an image: the ECR repository and the tag pattern the pipeline pushes."""

    image_repository: str | None = None
    image_tag: str = "{sha}"
    source: DeploySource = Field(default_factory=DeploySource)


class DeployGates(Strict):
    """Per-environment deploy settings beyond approvals and requirements."""

    cluster: str | None = None
    service: str | None = None
    refs: list[str] = Field(default_factory=list)
    variables: dict[str, str] = Field(default_factory=dict)
    approval_minutes: float = Field(default=60.0, gt=0)
    rejections: int = Field(default=1, ge=1)
    approve_emoji: str = Field(default="white_check_mark", pattern=EMOJI)
    reject_emoji: str = Field(default="x", pattern=EMOJI)
    rollback_approvals: int = Field(default=0, ge=0)
    lock_minutes: float = Field(default=60.0, gt=0)
    diff: Literal["off", "summary", "full"] = "summary"
