"""What a check asks CloudWatch about a model's ALB target group, and how it judges the
answer against the SLOs: pure functions (CloudWatch is read through bot.ports.CloudMetrics)."""

from __future__ import annotations

from bot.config.ab import tg_dimension
from bot.config.monitoring import CloudWatchSlos, CustomSlo
from bot.domain.monitoring.incidents import Finding, Status
from bot.ports import MetricQuery
from bot.services.ab.readings import ALB_NAMESPACE

Values = dict[str, float | None]


def slo_queries(slos: CloudWatchSlos) -> tuple[MetricQuery, ...]:
    dims = (("LoadBalancer", slos.load_balancer), ("TargetGroup", tg_dimension(slos.target_group)))
    found = [
        MetricQuery("requests", ALB_NAMESPACE, "RequestCount", "Sum", dims),
        MetricQuery("errors", ALB_NAMESPACE, "HTTPCode_Target_5XX_Count", "Sum", dims),
        MetricQuery("latency", ALB_NAMESPACE, "TargetResponseTime", slos.latency_stat, dims),
    ]
    fill = {"target_group": dims[1][1], "load_balancer": dims[0][1]}
    for i, m in enumerate(slos.custom):
        found.append(
            MetricQuery(f"c{i}", m.namespace, m.metric, m.stat, dimensions(m.dimensions, fill))
        )
    return tuple(found)


def dimensions(given: dict[str, str], fill: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The metric's dimensions, ``{target_group}`` and ``{load_balancer}`` filled in."""

    def filled(value: str) -> str:
        for key, replacement in fill.items():
            value = value.replace("{" + key + "}", replacement)
        return value

    return tuple((name, filled(value)) for name, value in sorted(given.items()))


def over(value: float, limit: float) -> str:
    return f"+{(value - limit) / limit:.0%}" if limit else f"+{value - limit:.3g}"


def latency(slos: CloudWatchSlos, values: Values) -> Finding | None:
    """CloudWatch's per-minute statistic, averaged over the window (Maximum: its worst minute)."""
    limit, title = slos.latency_seconds, f"{slos.latency_stat} latency"
    if limit is None:
        return None
    value = values.get("latency")
    if value is None:
        return Finding("latency", title, Status.UNKNOWN, "no data points", {"limit": limit})
    figures = {"value": value, "limit": limit}
    if value > limit:
        text = f"{value:.3g} s > SLO {limit:g} s ({over(value, limit)})"
        return Finding("latency", title, Status.BREACHED, text, figures)
    return Finding("latency", title, Status.OK, f"{value:.3g} s <= {limit:g} s", figures)


def errors(slos: CloudWatchSlos, values: Values) -> Finding | None:
    limit = slos.max_5xx_rate
    if limit is None:
        return None
    requests = int(values.get("requests") or 0)
    if requests < slos.min_requests:
        note = f"{requests} requests, fewer than {slos.min_requests} to judge"
        return Finding("5xx", "5xx rate", Status.UNKNOWN, note)
    rate = (values.get("errors") or 0.0) / requests
    said = f"{rate:.2%} of {requests} requests"
    figures = {"value": rate, "limit": limit, "requests": requests}
    if rate > limit:
        return Finding("5xx", "5xx rate", Status.BREACHED, f"{said} > SLO {limit:.2%}", figures)
    return Finding("5xx", "5xx rate", Status.OK, f"{said} <= {limit:.2%}", figures)


def custom(metric: CustomSlo, value: float | None) -> Finding:
    kind, title = f"slo:{metric.name}", metric.name
    limits = {"min": metric.min, "max": metric.max}
    if value is None:
        return Finding(kind, title, Status.UNKNOWN, "no data points", limits)
    figures = limits | {"value": value}
    if metric.min is not None and value < metric.min:
        text = f"{value:.4g} < min {metric.min:g}"
        return Finding(kind, title, Status.BREACHED, text, figures)
    if metric.max is not None and value > metric.max:
        text = f"{value:.4g} > max {metric.max:g}"
        return Finding(kind, title, Status.BREACHED, text, figures)
    return Finding(kind, title, Status.OK, f"{value:.4g} within limits", figures)


def judge_slos(slos: CloudWatchSlos, values: Values) -> list[Finding]:
    """Every configured SLO; missing data is unknown, never a breach."""
    found = [latency(slos, values), errors(slos, values)]
    found += [custom(m, values.get(f"c{i}")) for i, m in enumerate(slos.custom)]
    return [f for f in found if f is not None]
