"""ELBv2 weights and CloudWatch statistics through boto3, made async once here.

Clients come from ``integrations.aws.aws_client``: every call has a timeout and botocore's
bounded standard retries (throttling, 5xx, dropped connections). After those, a failure is an
ExternalError the caller shows (the A/B guard puts it on the experiment's card).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.clock import Clock, utcnow
from bot.errors import ExternalError, NotFound, UserInputError
from bot.ports import MetricQuery, Split, TrafficRoute

MAX_WEIGHT = 999  # ELBv2's limit per target group
MISSING = ("ListenerNotFound", "RuleNotFound", "TargetGroupNotFound")
PERIOD = 60
QUERIES_PER_CALL = 500


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def aws_call(service: str, what: str, call: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """One boto3 call with its failures as the bot's errors."""
    try:
        return dict(call(**kwargs))
    except ClientError as exc:
        if _code(exc) in MISSING:
            raise NotFound(f"{service} has no {what} ({_code(exc)})") from None
        raise ExternalError(f"{service} refused {what}: {_code(exc)}") from None
    except BotoCoreError as exc:
        raise ExternalError(f"{service} did not answer for {what}: {type(exc).__name__}") from None


def route_name(route: TrafficRoute) -> str:
    return f"rule {route.rule_arn}" if route.rule_arn else f"listener {route.listener_arn}"


def forward_action(actions: list[dict[str, Any]], route: TrafficRoute) -> dict[str, Any]:
    for action in actions:
        if action.get("Type") == "forward":
            return action
    raise ExternalError(f"the {route_name(route)} has no forward action")


def groups_of(action: dict[str, Any]) -> list[dict[str, Any]]:
    """The forward action's target groups with weights (a bare TargetGroupArn weighs 100)."""
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
    if groups:
        return [
            {"TargetGroupArn": g["TargetGroupArn"], "Weight": int(g.get("Weight", 1))}
            for g in groups
        ]
    if action.get("TargetGroupArn"):
        return [{"TargetGroupArn": action["TargetGroupArn"], "Weight": 100}]
    return []


def split_of(action: dict[str, Any], route: TrafficRoute) -> Split:
    weights = {g["TargetGroupArn"]: g["Weight"] for g in groups_of(action)}
    if route.group_a not in weights:
        raise ExternalError(f"the {route_name(route)} does not forward to target group A")
    return Split(a=weights[route.group_a], b=weights.get(route.group_b, 0))


def reweighted(action: dict[str, Any], route: TrafficRoute, a: int, b: int) -> dict[str, Any]:
    """The forward action with A's and B's weights set; other target groups keep theirs."""
    wanted = {route.group_a: a, route.group_b: b}
    groups = [
        {**g, "Weight": wanted.pop(g["TargetGroupArn"], g["Weight"])} for g in groups_of(action)
    ]
    groups += [{"TargetGroupArn": arn, "Weight": w} for arn, w in wanted.items()]
    config = dict(action.get("ForwardConfig") or {})
    config["TargetGroups"] = groups
    new = {k: v for k, v in action.items() if k not in ("TargetGroupArn", "ForwardConfig")}
    return new | {"ForwardConfig": config}


class AlbTraffic:
    """bot.ports.Traffic: the weights of a listener's or rule's forward action."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def split(self, route: TrafficRoute) -> Split:
        return await asyncio.to_thread(self.split_sync, route)

    async def set_split(self, route: TrafficRoute, a: int, b: int) -> Split:
        if not (0 <= a <= MAX_WEIGHT and 0 <= b <= MAX_WEIGHT) or a + b == 0:
            raise UserInputError(f"weights {a}/{b} are not valid ALB weights (0 to {MAX_WEIGHT}).")
        return await asyncio.to_thread(self.set_split_sync, route, a, b)

    def actions(self, route: TrafficRoute) -> list[dict[str, Any]]:
        if route.rule_arn:
            found = aws_call(
                "ELBv2", route_name(route), self.client.describe_rules, RuleArns=[route.rule_arn]
            )
            return list(found["Rules"][0].get("Actions", []))
        found = aws_call(
            "ELBv2",
            route_name(route),
            self.client.describe_listeners,
            ListenerArns=[route.listener_arn],
        )
        return list(found["Listeners"][0].get("DefaultActions", []))

    def split_sync(self, route: TrafficRoute) -> Split:
        return split_of(forward_action(self.actions(route), route), route)

    def set_split_sync(self, route: TrafficRoute, a: int, b: int) -> Split:
        actions = self.actions(route)
        forward = forward_action(actions, route)
        split_of(forward, route)  # refuses a route that does not forward to A
        new = [reweighted(x, route, a, b) if x is forward else x for x in actions]
        what = f"new weights on the {route_name(route)}"
        if route.rule_arn:
            aws_call("ELBv2", what, self.client.modify_rule, RuleArn=route.rule_arn, Actions=new)
        else:
            aws_call(
                "ELBv2",
                what,
                self.client.modify_listener,
                ListenerArn=route.listener_arn,
                DefaultActions=new,
            )
        return self.split_sync(route)


def combine(stat: str, values: list[float]) -> float | None:
    """One value for the window from its per-period data points."""
    if not values:
        return None
    if stat in ("Sum", "SampleCount"):
        return float(sum(values))
    if stat == "Minimum":
        return float(min(values))
    if stat == "Maximum":
        return float(max(values))
    return float(sum(values) / len(values))


class CloudWatchMetrics:
    """bot.ports.CloudMetrics: GetMetricData over the last window, one value per query."""

    def __init__(self, client: Any, *, clock: Clock = utcnow) -> None:
        self.client = client
        self.clock = clock

    async def read(
        self, queries: tuple[MetricQuery, ...], *, seconds: float
    ) -> dict[str, float | None]:
        return await asyncio.to_thread(self.read_sync, queries, seconds)

    def read_sync(
        self, queries: tuple[MetricQuery, ...], seconds: float
    ) -> dict[str, float | None]:
        end = self.clock()
        start = end - timedelta(seconds=max(seconds, PERIOD))
        points: dict[str, list[float]] = {q.key: [] for q in queries}
        for i in range(0, len(queries), QUERIES_PER_CALL):
            batch = queries[i : i + QUERIES_PER_CALL]
            for result in self.results(batch, start, end + timedelta(seconds=1)):
                points[result["Id"]] += [float(v) for v in result.get("Values", [])]
        return {q.key: combine(q.stat, points[q.key]) for q in queries}

    def results(self, batch: tuple[MetricQuery, ...], start: Any, end: Any) -> list[dict[str, Any]]:
        args: dict[str, Any] = {
            "MetricDataQueries": [metric_query(q) for q in batch],
            "StartTime": start,
            "EndTime": end,
        }
        found: list[dict[str, Any]] = []
        while True:
            page = aws_call("CloudWatch", "GetMetricData", self.client.get_metric_data, **args)
            found += page.get("MetricDataResults", [])
            if not page.get("NextToken"):
                return found
            args["NextToken"] = page["NextToken"]


def metric_query(q: MetricQuery) -> dict[str, Any]:
    metric = {
        "Namespace": q.namespace,
        "MetricName": q.name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in q.dimensions],
    }
    return {
        "Id": q.key,
        "MetricStat": {"Metric": metric, "Period": PERIOD, "Stat": q.stat},
        "ReturnData": True,
    }
