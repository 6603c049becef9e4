"""Prometheus metrics, held in a registry per app instance (nothing global, nothing at import)."""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.gc_collector import GCCollector

from bot.loop_lag import BUCKETS, LoopLag

M = TypeVar("M", Counter, Histogram)


class Children(Generic[M]):
    """A labelled metric's children, each made once: ``labels()`` costs a few microseconds
    a call, and the ack path counts every request twice."""

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self.made: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self.made.get(values)
        if child is None:
            child = self.made[values] = self.metric.labels(*values)
        return child


class Metrics:
    """The bot's counters and histograms; one instance per running app."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        GCCollector(registry=self.registry)  # python_gc_*: collections go on after start-up
        self.requests = Counter(
            "mlops_bot_http_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_count = Children(self.requests)  # by route and status
        self.command_latency = Histogram(
            "mlops_bot_command_seconds",
            "Time to handle a slash command, click or reaction, by command",
            ["command"],
            registry=self.registry,
        )
        self.errors = Counter(
            "mlops_bot_errors", "Errors by kind", ["kind"], registry=self.registry
        )
        self.slack_calls = Counter(
            "mlops_bot_slack_api_calls",
            "Slack Web API calls by method and result",
            ["method", "result"],
            registry=self.registry,
        )

        self.ignored = Counter(
            "mlops_bot_ignored_requests",
            "Authenticated requests the bot has no use for, by source and reason",
            ["source", "reason"],
            registry=self.registry,
        )
        self.interactions = Counter(
            "mlops_bot_interactions",
            "Slack interactions by outcome (recorded, duplicate, processed, failed, unrecorded)",
            ["outcome"],
            registry=self.registry,
        )
        self.interaction_count = Children(self.interactions)  # by outcome

        self.deliveries = Counter(
            "mlops_bot_webhook_deliveries",
            "GitLab webhook deliveries by outcome (processed, ignored, retried, failed)",
            ["outcome"],
            registry=self.registry,
        )

        self.loop_lag = Histogram(
            "mlops_bot_event_loop_lag_seconds",
            "How late the event loop's heartbeat woke up (time the loop was blocked)",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.loop_lag_max = Gauge(
            "mlops_bot_event_loop_lag_max_seconds",
            "The worst event-loop stall seen since the bot started",
            registry=self.registry,
        )

    def lag_monitor(self, interval: float = 0.05) -> LoopLag:
        """A heartbeat feeding the loop-lag histogram and the worst-stall gauge."""
        return LoopLag(self.loop_lag, self.loop_lag_max, interval=interval)

    def ignore(self, source: str, reason: str) -> None:
        self.ignored.labels(source=source, reason=reason).inc()

    def slack_call(self, method: str, result: str) -> None:
        self.slack_calls.labels(method=method, result=result).inc()

    def error(self, kind: str) -> None:
        self.errors.labels(kind=kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
