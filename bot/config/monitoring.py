"""Settings of model monitoring: per model, how often to check and how strictly; per
environment, the ALB's CloudWatch SLOs and the S3 prefixes of prediction logs and labels."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from bot.config.ab import ELB_ARN, METRIC_ID
from bot.config.base import Strict
from bot.domain.monitoring.records import S3Prefix

STAT = re.compile(r"Average|Sum|Minimum|Maximum|SampleCount|p\d{1,2}(\.\d{1,2})?")
LOAD_BALANCER = re.compile(r"app/[A-Za-z0-9-]{1,32}/[0-9a-f]{1,32}")
TARGET_GROUP = re.compile(ELB_ARN + r"targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{1,32}$")
DIGEST_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _s3_prefix(value: str) -> str:
    return str(S3Prefix.parse(value))  # ValueError says what a prefix looks like


def _digest_time(value: str) -> str:
    if not DIGEST_TIME.fullmatch(value):
        raise ValueError(f"{value!r} is not a time of day: write HH:MM in UTC, like 09:00")
    return value


def _matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


S3Url = Annotated[str, AfterValidator(_s3_prefix)]
DigestTime = Annotated[str, AfterValidator(_digest_time)]
Stat = Annotated[
    str, _matching(STAT, "a CloudWatch statistic: Average, Sum, Minimum, Maximum, SampleCount, p99")
]
LoadBalancer = Annotated[
    str, _matching(LOAD_BALANCER, "CloudWatch's LoadBalancer dimension: app/<name>/<id>")
]
TargetGroup = Annotated[
    str,
    _matching(
        TARGET_GROUP,
        "a target group ARN: arn:aws:elasticloadbalancing:<region>:<account>:"
        "targetgroup/<name>/<id>",
    ),
]


class CustomSlo(Strict):
    """A metric the model service publishes (online accuracy, queue depth, ...) with limits."""

    name: str = Field(pattern=METRIC_ID)
    namespace: str = Field(min_length=1, max_length=255)
    metric: str = Field(min_length=1, max_length=255)
    stat: Stat = "Average"
    dimensions: dict[str, str] = Field(default_factory=dict)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def has_a_limit(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError(f"custom SLO {self.name} needs `min` or `max`")
        return self


class CloudWatchSlos(Strict):
    """The service's ALB target group in CloudWatch and the limits it must stay within."""

    target_group: TargetGroup
    load_balancer: LoadBalancer
    latency_seconds: float | None = Field(default=None, gt=0, le=3600)
    latency_stat: Stat = "p99"
    max_5xx_rate: float | None = Field(default=None, ge=0, le=1)
    min_requests: int = Field(default=100, ge=0)
    custom: list[CustomSlo] = Field(default_factory=list)


class Thresholds(Strict):
    """How sure a check must be before it opens an incident."""

    false_alarm_rate: float = Field(default=0.01, gt=0, lt=0.5)
    accuracy_tolerance: float = Field(default=0.02, ge=0, le=1)
    accuracy_confidence: float = Field(default=0.99, ge=0.5, lt=1)
    min_labels: int = Field(default=100, ge=10)


class EnvMonitoring(Strict):
    """What is watched in one environment; at least one of the three."""

    cloudwatch: CloudWatchSlos | None = None
    predictions: S3Url | None = None
    labels: S3Url | None = None

    @model_validator(mode="after")
    def watches_something(self) -> Self:
        if self.labels is not None and self.predictions is None:
            raise ValueError("`labels` are joined with `predictions`: give `predictions` too")
        if self.cloudwatch is None and self.predictions is None:
            raise ValueError("give `cloudwatch` or `predictions` (or both): nothing is watched")
        return self


class MonitoringConfig(Strict):
    """A model's monitoring: shared cadence and thresholds, one section per environment."""

    interval_minutes: int = Field(default=15, ge=1, le=1440)
    window_minutes: int | None = Field(default=None, ge=1, le=10080)
    labels_hours: int = Field(default=24, ge=1, le=720)
    digest: DigestTime | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    environments: dict[str, EnvMonitoring] = Field(default_factory=dict)

    @property
    def window(self) -> int:
        """Minutes of predictions one check reads (default: the interval)."""
        return self.window_minutes or self.interval_minutes

    def unknown_environments(self, known: Iterable[str]) -> list[str]:
        return sorted(set(self.environments) - set(known))
