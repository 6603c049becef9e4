"""What the A/B guard asks CloudWatch and how it judges the answer: pure functions.

Per target group: RequestCount and HTTPCode_Target_5XX_Count (Sum) give the 5xx rate,
TargetResponseTime (Average) the latency; custom metrics are read once per variant.
"""

from __future__ import annotations

from bot.config.ab import AbConfig, AbGuardConfig, CustomMetric, tg_dimension
from bot.domain.ab import GuardReading
from bot.ports import MetricQuery
from bot.views.ab import reading_text

ALB_NAMESPACE = "AWS/ApplicationELB"
Values = dict[str, float | None]


def alb_queries(variant: str, dims: tuple[tuple[str, str], ...]) -> list[MetricQuery]:
    return [
        MetricQuery(f"{variant}_requests", ALB_NAMESPACE, "RequestCount", "Sum", dims),
        MetricQuery(f"{variant}_errors", ALB_NAMESPACE, "HTTPCode_Target_5XX_Count", "Sum", dims),
        MetricQuery(f"{variant}_latency", ALB_NAMESPACE, "TargetResponseTime", "Average", dims),
    ]


def custom_dimensions(metric: CustomMetric, fill: dict[str, str]) -> tuple[tuple[str, str], ...]:
    def filled(value: str) -> str:
        for key, replacement in fill.items():
            value = value.replace("{" + key + "}", replacement)
        return value

    return tuple((name, filled(value)) for name, value in sorted(metric.dimensions.items()))


def queries(ab: AbConfig) -> tuple[MetricQuery, ...]:
    """Every statistic one reading needs, for A and for B."""
    found: list[MetricQuery] = []
    for variant, group in (("a", ab.target_group_a), ("b", ab.target_group_b)):
        dims = (("LoadBalancer", ab.lb_dimension), ("TargetGroup", tg_dimension(group)))
        found += alb_queries(variant, dims)
        fill = {"variant": variant, "target_group": dims[1][1], "load_balancer": dims[0][1]}
        for i, metric in enumerate(ab.guard.custom):
            found.append(
                MetricQuery(
                    f"c{i}_{variant}",
                    metric.namespace,
                    metric.metric,
                    metric.stat,
                    custom_dimensions(metric, fill),
                )
            )
    return tuple(found)


def rate(values: Values, variant: str) -> float | None:
    """The 5xx share of the requests (no 5xx data points with requests: none happened)."""
    requests = values.get(f"{variant}_requests")
    if not requests:
        return None
    return (values.get(f"{variant}_errors") or 0.0) / requests


def error_rate(guard: AbGuardConfig, values: Values) -> GuardReading:
    a, b = rate(values, "a"), rate(values, "b")
    served = int(values.get("b_requests") or 0)
    if b is None or served < guard.min_requests:
        note = f"B served {served} requests, fewer than {guard.min_requests}"
        return GuardReading("5xx rate", "5xx", a, b, None, high=guard.max_5xx_rate_delta, note=note)
    delta = b - (a or 0.0)
    return GuardReading(
        "5xx rate", "5xx", a, b, delta, high=guard.max_5xx_rate_delta,
        breached=delta > guard.max_5xx_rate_delta,
    )  # fmt: skip


def latency(guard: AbGuardConfig, values: Values) -> GuardReading:
    a, b = values.get("a_latency"), values.get("b_latency")
    if a is None or b is None or a <= 0:
        return GuardReading(
            "latency", "latency", a, b, None, high=guard.max_latency_ratio, note="no data"
        )
    ratio = b / a
    return GuardReading(
        "latency", "latency", a, b, ratio, high=guard.max_latency_ratio,
        breached=ratio > guard.max_latency_ratio,
    )  # fmt: skip


def custom(metric: CustomMetric, index: int, values: Values) -> GuardReading:
    a, b = values.get(f"c{index}_a"), values.get(f"c{index}_b")
    value: float | None = None
    if metric.compare == "b":
        value = b
    elif a is not None and b is not None:
        value = b - a if metric.compare == "b_minus_a" else (b / a if a else None)
    low, high = metric.min, metric.max
    if value is None:
        return GuardReading(metric.name, metric.compare, a, b, None, low, high, note="no data")
    breached = (low is not None and value < low) or (high is not None and value > high)
    return GuardReading(metric.name, metric.compare, a, b, value, low, high, breached)


def judge(guard: AbGuardConfig, values: Values) -> list[GuardReading]:
    """B compared with A on every configured check; missing data never breaches."""
    readings = [error_rate(guard, values), latency(guard, values)]
    return readings + [custom(m, i, values) for i, m in enumerate(guard.custom)]


def breached(readings: list[GuardReading]) -> str:
    """The breached checks in a sentence, for the history and the announcement."""
    return "; ".join(reading_text(r) for r in readings if r.breached)
