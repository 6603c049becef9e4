"""A/B setups on moto for the sandbox and the tests: B's ECS service and ecspresso config, an
ALB with a listener rule forwarding to two target groups (A 100, B 0), and CloudWatch data
shaped like the ALB's own metrics, which the console puts to provoke the guard.

The bot's settings name the ALB by ARN, which moto invents: ``with_ab_routes`` points the
settings at the ones created here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.config import ModelConfig, Settings
from bot.config_ab import AbConfig, tg_dimension
from bot.sandbox.deploy_fixtures import (
    DeployTarget,
    ensure_repository,
    push_image,
    task_definition,
    write_config,
)

Route = dict[str, str | None]
ALB_NAMESPACE = "AWS/ApplicationELB"


@dataclass
class Alb:
    """One load balancer with one HTTP listener; each A/B setup gets a rule on it."""

    elbv2: Any
    vpc: str
    listener: str
    rules: int = 0

    @classmethod
    def create(cls, ec2: Any, elbv2: Any, name: str = "ml-alb") -> Alb:
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=zone)[
                "Subnet"
            ]["SubnetId"]
            for i, zone in enumerate(("us-east-1a", "us-east-1b"), start=1)
        ]
        lb = elbv2.create_load_balancer(Name=name, Subnets=subnets, Type="application")
        not_found = {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "no route"}
        listener = elbv2.create_listener(
            LoadBalancerArn=lb["LoadBalancers"][0]["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": not_found}],
        )
        return cls(elbv2, vpc, listener["Listeners"][0]["ListenerArn"])

    def target_group(self, name: str) -> str:
        created = self.elbv2.create_target_group(
            Name=name[:32], Protocol="HTTP", Port=8080, VpcId=self.vpc, TargetType="ip"
        )
        return str(created["TargetGroups"][0]["TargetGroupArn"])

    def split_rule(self, path: str, group_a: str, group_b: str) -> str:
        """A rule sending ``path`` to A (weight 100) and B (weight 0)."""
        self.rules += 1
        groups = [
            {"TargetGroupArn": group_a, "Weight": 100},
            {"TargetGroupArn": group_b, "Weight": 0},
        ]
        rule = self.elbv2.create_rule(
            ListenerArn=self.listener,
            Priority=self.rules * 10,
            Conditions=[{"Field": "path-pattern", "Values": [path]}],
            Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}],
        )
        return str(rule["Rules"][0]["RuleArn"])


def b_envs(model: ModelConfig) -> set[str]:
    """The environments that serve B for another environment of the model."""
    return {env.ab.b_env for env in model.environments.values() if env.ab is not None}


def create_b_target(
    ecr: Any, ecs: Any, root: Path, *, model: str, env: str, cluster: str, service: str,
    tags: tuple[str, ...], running: str,
) -> DeployTarget:  # fmt: skip
    """Like deploy_fixtures.create_target, with the cluster and service the settings name
    (B shares A's cluster under its own service name)."""
    uri = ensure_repository(ecr, model)
    target = DeployTarget(
        model=model,
        env=env,
        region=str(ecs.meta.region_name),
        cluster=cluster,
        service=service,
        family=f"{model}-api-{env}",
        repository=model,
        repository_uri=uri,
        config=root / model / env / "ecspresso.yml",
        digests={tag: push_image(ecr, model, tag) for tag in tags},
    )
    write_config(target.config.parent, target)
    ecs.create_cluster(clusterName=cluster)
    td = task_definition(target.family, target.image(running), model=model, env=env)
    arn = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster=cluster, serviceName=service, taskDefinition=arn, desiredCount=1, launchType="EC2"
    )
    return target


def create_ab(
    aws: Any, root: Path, settings: Settings, *, tags: Mapping[str, tuple[str, ...]]
) -> dict[tuple[str, str], Route]:
    """B services and ALB routes for every environment that declares ``ab:``; the routes
    (ARNs) by model and environment. ``tags`` are the image tags to push per model."""
    routes: dict[tuple[str, str], Route] = {}
    alb: Alb | None = None
    ecr, ecs = aws.client("ecr"), aws.client("ecs")
    for name, model in settings.models.items():
        for env_name, env in model.environments.items():
            if env.ab is None or name not in tags:
                continue
            b = model.environments[env.ab.b_env]
            assert b.cluster and b.service
            create_b_target(
                ecr, ecs, root, model=name, env=env.ab.b_env, cluster=b.cluster,
                service=b.service, tags=tags[name], running=tags[name][0],
            )  # fmt: skip
            alb = alb or Alb.create(aws.client("ec2"), aws.client("elbv2"))
            group_a = alb.target_group(f"{name}-{env_name}-a")
            group_b = alb.target_group(f"{name}-{env_name}-b")
            rule = alb.split_rule(f"/{name}/*", group_a, group_b)
            routes[(name, env_name)] = {
                "listener_arn": None,
                "rule_arn": rule,
                "target_group_a": group_a,
                "target_group_b": group_b,
                "load_balancer": None,
            }
    return routes


def with_ab_routes(
    models: Mapping[str, ModelConfig], routes: Mapping[tuple[str, str], Route]
) -> dict[str, ModelConfig]:
    """The models with each A/B setup pointed at the ALB created for it."""
    out = dict(models)
    for (name, env_name), route in routes.items():
        env = out[name].environments[env_name]
        assert env.ab is not None
        ab = env.ab.model_copy(update=route)
        envs = {**out[name].environments, env_name: env.model_copy(update={"ab": ab})}
        out[name] = out[name].model_copy(update={"environments": envs})
    return out


# ---- CloudWatch data like the ALB's -------------------------------------------------------------

HEALTHY = {"requests": 200.0, "errors": 0.0, "latency": 0.1, "custom": 0.93}
MODES: dict[str, dict[str, float]] = {
    "healthy": HEALTHY,
    "b-errors": HEALTHY | {"errors": 40.0},
    "b-slow": HEALTHY | {"latency": 0.45},
    "b-accuracy": HEALTHY | {"custom": 0.80},
}


def metric_data(ab: AbConfig, variant: str, values: Mapping[str, float]) -> list[dict[str, Any]]:
    group = ab.target_group_a if variant == "a" else ab.target_group_b
    dims = [
        {"Name": "LoadBalancer", "Value": ab.lb_dimension},
        {"Name": "TargetGroup", "Value": tg_dimension(group)},
    ]
    now = datetime.now(UTC)
    return [
        {"MetricName": name, "Dimensions": dims, "Value": values[key], "Timestamp": now}
        for name, key in (
            ("RequestCount", "requests"),
            ("HTTPCode_Target_5XX_Count", "errors"),
            ("TargetResponseTime", "latency"),
        )
    ]


def custom_data(ab: AbConfig, variant: str, value: float) -> list[tuple[str, dict[str, Any]]]:
    """Each custom metric's data point for ``variant``, with its namespace."""
    fill = {
        "{variant}": variant,
        "{target_group}": tg_dimension(ab.target_group_a if variant == "a" else ab.target_group_b),
        "{load_balancer}": ab.lb_dimension,
    }
    found = []
    for metric in ab.guard.custom:
        dims = []
        for key, raw in sorted(metric.dimensions.items()):
            for placeholder, replacement in fill.items():
                raw = raw.replace(placeholder, replacement)
            dims.append({"Name": key, "Value": raw})
        point = {"MetricName": metric.metric, "Dimensions": dims, "Value": value}
        found.append((metric.namespace, point | {"Timestamp": datetime.now(UTC)}))
    return found


def put_metrics(cloudwatch: Any, ab: AbConfig, mode: str) -> None:
    """A's data is always healthy; B's follows ``mode`` (healthy, b-errors, b-slow,
    b-accuracy)."""
    if mode not in MODES:
        raise ValueError(f"unknown metrics mode {mode!r}; known: {', '.join(MODES)}")
    for variant, values in (("a", HEALTHY), ("b", MODES[mode])):
        cloudwatch.put_metric_data(
            Namespace=ALB_NAMESPACE, MetricData=metric_data(ab, variant, values)
        )
        for namespace, point in custom_data(ab, variant, values["custom"]):
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=[point])


@dataclass(frozen=True)
class MetricsLine:
    """The console's `metrics <model> <env> <mode>` line."""

    settings: Settings
    aws: Any

    def __call__(self, rest: str) -> str:
        words = rest.split()
        if len(words) != 3:
            raise ValueError(f"metrics takes <model> <env> <mode>; modes: {', '.join(MODES)}")
        model, env, mode = words
        envs = self.settings.models[model].environments if model in self.settings.models else {}
        ab = envs[env].ab if env in envs else None
        if ab is None:
            raise ValueError(f"{model}/{env} has no A/B setup")
        put_metrics(self.aws.client("cloudwatch"), ab, mode)
        return f"(CloudWatch now holds {mode} data for {model}/{env}: A healthy, B {mode})"
