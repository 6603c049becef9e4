"""Monitoring settings: defaults, owners in both forms, and a clear line for each bad value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config.loading import settings_from_data
from bot.config.settings import Settings
from bot.errors import ConfigError

TG = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/fraud-prod/0123456789abcdef"


def settings(**overrides: Any) -> Settings:
    fraud = {"channel": "#ml-fraud", "environments": {"stg": {}, "prod": {}}, **overrides}
    return settings_from_data({"models": {"fraud": fraud}})


def issues_of(**overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings(**overrides)
    return caught.value.issues


def prod(**section: Any) -> dict[str, Any]:
    return {"environments": {"prod": section}}


def test_defaults_check_every_15_minutes_at_a_1_percent_false_alarm_rate() -> None:
    config = settings(monitoring=prod(predictions="s3://ml-logs/fraud/prod")).models["fraud"]
    assert config.monitoring is not None
    assert config.monitoring.interval_minutes == 15
    assert config.monitoring.window == 15
    assert config.monitoring.thresholds.false_alarm_rate == 0.01
    assert config.monitoring.thresholds.accuracy_tolerance == 0.02
    assert config.monitoring.environments["prod"].predictions == "s3://ml-logs/fraud/prod/"


def test_owners_take_one_group_as_before_or_a_list_of_users_and_groups() -> None:
    assert settings(owners="S0FRAUD").models["fraud"].owners == ["S0FRAUD"]
    assert settings(owners=["S0FRAUD", "U0ALICE"]).models["fraud"].owners == ["S0FRAUD", "U0ALICE"]
    assert settings().models["fraud"].owners == []
    assert issues_of(owners=["alice"]) == [
        "models.fraud.owners[0]: must be a Slack user id (U... or W...) or user group id (S...), "
        'got "alice"'
    ]


def test_bad_values_say_what_was_wrong_and_what_would_be_right() -> None:
    issues = issues_of(
        monitoring={
            "interval_minutes": 0,
            "digest": "9am",
            "thresholds": {"false_alarm_rate": 0.7},
            "environments": {
                "prod": {
                    "predictions": "ml-logs/fraud",
                    "cloudwatch": {"target_group": TG, "load_balancer": "ml-prod"},
                }
            },
        }
    )
    text = "\n".join(issues)
    assert "models.fraud.monitoring.interval_minutes: must be an integer >= 1" in text
    assert "models.fraud.monitoring.digest:" in text and "write HH:MM in UTC" in text
    assert "models.fraud.monitoring.thresholds.false_alarm_rate: must be a number > 0" in text
    assert "models.fraud.monitoring.environments.prod.predictions:" in text
    assert "write s3://<bucket>/<prefix>/" in text
    assert "models.fraud.monitoring.environments.prod.cloudwatch.load_balancer:" in text


def test_an_environment_must_watch_something_and_exist() -> None:
    assert "nothing is watched" in " ".join(issues_of(monitoring=prod()))
    assert "give `predictions` too" in " ".join(
        issues_of(monitoring=prod(cloudwatch=None, labels="s3://ml-logs/labels/"))
    )
    unknown = issues_of(monitoring={"environments": {"qa": {"predictions": "s3://ml-logs/qa/"}}})
    assert any(
        "monitoring of unknown environments ['qa']; environments: stg, prod" in i for i in unknown
    ), unknown


def test_custom_slos_need_a_limit_and_a_cloudwatch_statistic() -> None:
    metric = {"name": "auc", "namespace": "ml/fraud", "metric": "OnlineAUC"}
    lb = "app/ml-prod/50dc6c495c0c9188"
    bad_stat = {"target_group": TG, "load_balancer": lb, "custom": [metric | {"stat": "median"}]}
    assert issues_of(monitoring=prod(cloudwatch=bad_stat)) == [
        "models.fraud.monitoring.environments.prod.cloudwatch.custom[0].stat: Value error, "
        "'median' is not a CloudWatch statistic: Average, Sum, Minimum, Maximum, SampleCount, "
        'p99, got "median"'
    ]
    no_limit = {"target_group": TG, "load_balancer": lb, "custom": [metric | {"stat": "p99"}]}
    assert "custom SLO auc needs `min` or `max`" in " ".join(
        issues_of(monitoring=prod(cloudwatch=no_limit))
    )
    bad_tg = {"target_group": TG.replace("targetgroup", "loadbalancer"), "load_balancer": lb}
    assert "is not a target group ARN" in " ".join(issues_of(monitoring=prod(cloudwatch=bad_tg)))


def test_the_example_monitoring_config_loads() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "monitoring" / "bot-config.yaml"
    config = settings_from_data(yaml.safe_load(path.read_text())).models["fraud"]
    assert config.owners == ["S0FRAUDTEAM", "U012ABCDEF"]
    assert config.monitoring is not None and config.monitoring.digest == "09:00"
    prod = config.monitoring.environments["prod"]
    assert prod.cloudwatch is not None and prod.cloudwatch.latency_stat == "p99"
    assert prod.labels == "s3://ml-logs/fraud/prod/labels/"
