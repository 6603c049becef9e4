"""Settings of A/B splits: the ALB route with its two target groups, who must approve which
weight changes, and the guard that compares B with A in CloudWatch."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from bot.config.base import Strict

ELB_ARN = r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:"
METRIC_ID = r"^[a-z][a-zA-Z0-9_]{0,40}$"


class CustomMetric(Strict):
    """A metric the team publishes per variant (online accuracy, a drift score, ...).

    Dimension values may use ``{variant}`` (``a`` or ``b``), ``{target_group}`` and
    ``{load_balancer}`` (CloudWatch's dimension values of the ALB). ``compare`` picks what is
    checked against ``min``/``max``: B minus A, B divided by A, or B's value alone.
    """

    name: str = Field(pattern=METRIC_ID)
    namespace: str = Field(min_length=1, max_length=255)
    metric: str = Field(min_length=1, max_length=255)
    stat: Literal["Average", "Sum", "Minimum", "Maximum", "SampleCount"] = "Average"
    dimensions: dict[str, str] = Field(default_factory=dict)
    compare: Literal["b_minus_a", "b_over_a", "b"] = "b_minus_a"
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def has_a_limit(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError(f"custom metric {self.name} needs `min` or `max`")
        return self


class AbGuardConfig(Strict):
    """While B has traffic: every ``interval_seconds`` read the last ``window_seconds`` of
    CloudWatch for both target groups; ``consecutive_breaches`` bad readings in a row abort."""

    interval_seconds: float = Field(default=60.0, gt=0, le=3600)
    window_seconds: float = Field(default=300.0, ge=1, le=86400)
    consecutive_breaches: int = Field(default=3, ge=1, le=100)
    min_requests: int = Field(default=10, ge=0)
    max_5xx_rate_delta: float = Field(default=0.01, ge=0, le=1)
    max_latency_ratio: float = Field(default=1.5, gt=0)
    abort_when_blind: int = Field(default=0, ge=0)
    custom: list[CustomMetric] = Field(default_factory=list)


class AbConfig(Strict):
    """An environment's A/B setup. A is the environment's own service; B is the service of
    ``b_env``, another environment of the model (its own ecspresso config, cluster, service,
    approvals, lock and history), so that B's deploys are ordinary deploys."""

    b_env: str = Field(min_length=1, max_length=64)
    listener_arn: str | None = Field(default=None, pattern=ELB_ARN)
    rule_arn: str | None = Field(default=None, pattern=ELB_ARN)
    target_group_a: str = Field(pattern=ELB_ARN)
    target_group_b: str = Field(pattern=ELB_ARN)
    load_balancer: str | None = None
    default_weight: int = Field(default=10, ge=0, le=100)
    approvals_above: int = Field(default=50, ge=0, le=100)
    approvals: int = Field(default=1, ge=0)
    guard: AbGuardConfig = Field(default_factory=AbGuardConfig)

    @model_validator(mode="after")
    def one_route(self) -> Self:
        if (self.listener_arn is None) == (self.rule_arn is None):
            raise ValueError("give exactly one of listener_arn and rule_arn")
        if self.target_group_a == self.target_group_b:
            raise ValueError("target_group_a and target_group_b must differ")
        return self

    def needs_approval(self, current: int, wanted: int) -> bool:
        """An increase of B's share to above ``approvals_above`` percent needs approvers."""
        return self.approvals > 0 and wanted > current and wanted > self.approvals_above

    @property
    def lb_dimension(self) -> str:
        """CloudWatch's LoadBalancer value (``app/<name>/<id>``), from the listener or rule."""
        if self.load_balancer:
            return self.load_balancer
        arn = self.listener_arn or self.rule_arn or ""
        parts = arn.split(":", 5)[-1].split("/")
        return "/".join(parts[1:4])


def tg_dimension(arn: str) -> str:
    """CloudWatch's TargetGroup value (``targetgroup/<name>/<id>``) of a target group ARN."""
    return arn.split(":", 5)[-1]
