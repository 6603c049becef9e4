"""AlbTraffic and CloudWatchMetrics against a real moto server (ELBv2, CloudWatch), and the
guard's queries and judgement on data put the way the ALB publishes it."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from botocore.config import Config

from bot.config.ab import AbConfig
from bot.errors import ExternalError, NotFound, UserInputError
from bot.ports import MetricQuery, Split, TrafficRoute
from bot.sandbox.fixtures.ab import Alb, put_metrics
from bot.services.ab.readings import judge, queries
from integrations.aws.alb import AlbTraffic, CloudWatchMetrics
from tests.moto_server import CREDENTIALS, MotoServer, moto_fixtures

moto_server, moto = moto_fixtures()
ELB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:"


@pytest.fixture
def alb(moto: MotoServer) -> Alb:
    return Alb.create(moto.client("ec2"), moto.client("elbv2"))


@pytest.fixture
def groups(alb: Alb) -> tuple[str, str]:
    return alb.target_group("fraud-prod-a"), alb.target_group("fraud-prod-b")


@pytest.fixture
def traffic(moto: MotoServer) -> AlbTraffic:
    return AlbTraffic(moto.client("elbv2"))


def forward_listener(alb: Alb, *groups: tuple[str, int], port: int = 8080) -> str:
    """Another listener whose default action forwards to ``groups`` (arn, weight)."""
    lb = alb.elbv2.describe_listeners(ListenerArns=[alb.listener])["Listeners"][0]
    target = [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in groups]
    created = alb.elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=port,
        DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": target}}],
    )
    return str(created["Listeners"][0]["ListenerArn"])


def rule_groups(alb: Alb, rule: str) -> dict[str, int]:
    action = alb.elbv2.describe_rules(RuleArns=[rule])["Rules"][0]["Actions"][0]
    return {g["TargetGroupArn"]: g["Weight"] for g in action["ForwardConfig"]["TargetGroups"]}


async def test_weights_round_trip_through_a_listener_rule(
    alb: Alb, groups: tuple[str, str], traffic: AlbTraffic
) -> None:
    a, b = groups
    rule = alb.split_rule("/fraud/*", a, b)
    route = TrafficRoute(a, b, rule_arn=rule)

    assert await traffic.split(route) == Split(100, 0)
    assert await traffic.set_split(route, 70, 30) == Split(70, 30)

    assert rule_groups(alb, rule) == {a: 70, b: 30}
    assert await traffic.split(route) == Split(70, 30)


async def test_weights_round_trip_through_a_listener_default_action(
    alb: Alb, groups: tuple[str, str], traffic: AlbTraffic
) -> None:
    a, b = groups
    other = alb.target_group("shadow")
    listener = forward_listener(alb, (a, 90), (b, 10), (other, 5))
    route = TrafficRoute(a, b, listener_arn=listener)

    assert await traffic.split(route) == Split(90, 10)
    assert await traffic.set_split(route, 0, 100) == Split(0, 100)

    action = alb.elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]
    weights = {
        g["TargetGroupArn"]: g["Weight"]
        for g in action["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    }
    assert weights == {a: 0, b: 100, other: 5}


async def test_a_plain_forward_to_a_reads_as_all_on_a_and_gains_b(
    alb: Alb, groups: tuple[str, str], traffic: AlbTraffic
) -> None:
    a, b = groups
    lb = alb.elbv2.describe_listeners(ListenerArns=[alb.listener])["Listeners"][0]
    listener = alb.elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=9090,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": a}],
    )["Listeners"][0]["ListenerArn"]
    route = TrafficRoute(a, b, listener_arn=listener)

    assert await traffic.split(route) == Split(100, 0)
    assert await traffic.set_split(route, 80, 20) == Split(80, 20)


async def test_routes_that_cannot_carry_the_split_are_refused(
    alb: Alb, groups: tuple[str, str], traffic: AlbTraffic
) -> None:
    a, b = groups
    elsewhere = alb.target_group("elsewhere")
    rule = alb.split_rule("/other/*", elsewhere, b)
    missing = alb.listener[:-4] + "beef"

    with pytest.raises(ExternalError, match="does not forward to target group A"):
        await traffic.set_split(TrafficRoute(a, b, rule_arn=rule), 50, 50)
    with pytest.raises(ExternalError, match="has no forward action"):
        await traffic.split(TrafficRoute(a, b, listener_arn=alb.listener))
    with pytest.raises(NotFound, match="ListenerNotFound"):
        await traffic.split(TrafficRoute(a, b, listener_arn=missing))
    with pytest.raises(UserInputError, match="not valid ALB weights"):
        await traffic.set_split(TrafficRoute(a, b, rule_arn=rule), 0, 0)
    assert rule_groups(alb, rule) == {elsewhere: 100, b: 0}


def ab_config(rule: str, a: str, b: str, **guard: Any) -> AbConfig:
    custom = {
        "name": "online_accuracy",
        "namespace": "MLOps/fraud",
        "metric": "OnlineAccuracy",
        "dimensions": {"Variant": "{variant}", "Group": "{target_group}"},
        "min": -0.02,
    }
    return AbConfig.model_validate(
        {
            "b_env": "prod-b",
            "rule_arn": rule,
            "target_group_a": a,
            "target_group_b": b,
            "guard": {"min_requests": 20, "custom": [custom], **guard},
        }
    )


async def test_cloudwatch_answers_the_guards_queries_per_target_group(
    moto: MotoServer, alb: Alb, groups: tuple[str, str]
) -> None:
    a, b = groups
    ab = ab_config(alb.split_rule("/fraud/*", a, b), a, b)
    metrics = CloudWatchMetrics(moto.client("cloudwatch"))

    put_metrics(moto.client("cloudwatch"), ab, "healthy")
    put_metrics(moto.client("cloudwatch"), ab, "b-errors")
    values = await metrics.read(queries(ab), seconds=120)

    assert values["a_requests"] == values["b_requests"] == 400.0
    assert (values["a_errors"], values["b_errors"]) == (0.0, 40.0)
    assert values["b_latency"] == pytest.approx(0.1)
    assert (values["c0_a"], values["c0_b"]) == (pytest.approx(0.93), pytest.approx(0.93))
    readings = {r.name: r for r in judge(ab.guard, values)}
    assert readings["5xx rate"].breached and readings["5xx rate"].value == pytest.approx(0.1)
    assert not readings["latency"].breached and not readings["online_accuracy"].breached


async def test_each_mode_breaches_its_own_check(
    moto: MotoServer, alb: Alb, groups: tuple[str, str]
) -> None:
    a, b = groups
    ab = ab_config(alb.split_rule("/fraud/*", a, b), a, b)
    metrics = CloudWatchMetrics(moto.client("cloudwatch"))
    cloudwatch = moto.client("cloudwatch")

    put_metrics(cloudwatch, ab, "b-slow")
    put_metrics(cloudwatch, ab, "b-accuracy")
    readings = {r.name: r for r in judge(ab.guard, await metrics.read(queries(ab), seconds=60))}

    assert readings["latency"].breached and readings["latency"].value == pytest.approx(2.75)
    assert readings["online_accuracy"].breached
    assert readings["online_accuracy"].value == pytest.approx(-0.065)
    assert not readings["5xx rate"].breached


async def test_no_data_is_none_and_never_a_breach(moto: MotoServer) -> None:
    query = MetricQuery("x", "AWS/ApplicationELB", "RequestCount", "Sum", (("TargetGroup", "t"),))
    metrics = CloudWatchMetrics(moto.client("cloudwatch"))

    assert await metrics.read((query,), seconds=60) == {"x": None}
    ab = AbConfig.model_validate(
        {
            "b_env": "prod-b",
            "listener_arn": ELB + "listener/app/x/1/2",
            "target_group_a": ELB + "targetgroup/a/1",
            "target_group_b": ELB + "targetgroup/b/2",
        }
    )
    readings = judge(ab.guard, {})
    assert not any(r.breached for r in readings)
    assert ab.lb_dimension == "app/x/1"


async def test_an_unreachable_cloudwatch_is_an_external_error_soon() -> None:
    client = boto3.session.Session().client(
        "cloudwatch",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 2}),
    )
    query = MetricQuery("x", "AWS/ApplicationELB", "RequestCount", "Sum", ())
    started = time.monotonic()

    with pytest.raises(ExternalError, match="CloudWatch did not answer"):
        await CloudWatchMetrics(client).read((query,), seconds=60)
    assert time.monotonic() - started < 10
