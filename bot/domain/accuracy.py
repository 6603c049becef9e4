"""Metrics of a run against the champion, and the gate verdict: pure functions."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.config.training import Gate


class MetricsError(ValueError):
    """The metrics file is missing or malformed; the message says how."""


@dataclass(frozen=True)
class MetricsReport:
    metrics: dict[str, float]
    test_set: str | None = None


@dataclass(frozen=True)
class Champion:
    """What the candidate is compared with: the run deployed to prod, or a configured baseline."""

    label: str
    metrics: dict[str, float]
    test_set: str | None = None


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    champion: Champion | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        champion = data.get("champion")
        return cls(
            passed=bool(data.get("passed")),
            reasons=[str(r) for r in data.get("reasons", [])],
            champion=Champion(**champion) if isinstance(champion, dict) else None,
        )


def number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MetricsError(f"metric {name!r} is not a finite number")
    return float(value)


def parse_metrics(raw: bytes) -> MetricsReport:
    """Read ``{"metrics": {...}, "test_set": "v3"}`` (or the metrics at the top level)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MetricsError("the metrics file is not valid JSON") from None
    if not isinstance(data, dict):
        raise MetricsError("the metrics file must hold a JSON object")
    test_set = data.get("test_set")
    values = data.get("metrics", {k: v for k, v in data.items() if k != "test_set"})
    if not isinstance(values, dict) or not values:
        raise MetricsError("the metrics file holds no metrics")
    metrics = {str(k): number(str(k), v) for k, v in values.items()}
    return MetricsReport(metrics, str(test_set) if test_set is not None else None)


def comparable(report: MetricsReport, champion: Champion | None) -> bool:
    return champion is not None and report.test_set == champion.test_set


def minimum_failures(report: MetricsReport, gate: Gate) -> list[str]:
    reasons = []
    for name, floor in sorted(gate.min.items()):
        value = report.metrics.get(name)
        if value is None:
            reasons.append(f"{name} is missing (gate needs >= {floor:g})")
        elif value < floor:
            reasons.append(f"{name} {value:.4g} is below the minimum {floor:g}")
    return reasons


def drop_failures(report: MetricsReport, champion: Champion | None, gate: Gate) -> list[str]:
    if not gate.max_drop or champion is None:
        return []
    if not comparable(report, champion):
        return [
            f"test set {report.test_set or '?'} differs from the champion's "
            f"{champion.test_set or '?'}: drops cannot be checked"
        ]
    reasons = []
    for name, allowed in sorted(gate.max_drop.items()):
        value, best = report.metrics.get(name), champion.metrics.get(name)
        if value is None or best is None:
            continue
        if best - value > allowed:
            reasons.append(
                f"{name} dropped {best - value:.4g} against {champion.label} "
                f"(at most {allowed:g} allowed)"
            )
    return reasons


def judge(report: MetricsReport, champion: Champion | None, gate: Gate) -> Verdict:
    """The gate: minimum values, and the largest drop against the champion on the same test set."""
    reasons = minimum_failures(report, gate) + drop_failures(report, champion, gate)
    return Verdict(passed=not reasons, reasons=reasons, champion=champion)


@dataclass(frozen=True)
class Row:
    name: str
    candidate: float | None
    champion: float | None

    @property
    def delta(self) -> float | None:
        if self.candidate is None or self.champion is None:
            return None
        return self.candidate - self.champion


def table(report: MetricsReport, champion: Champion | None) -> list[Row]:
    """One row per metric either side has; champion values only when the test sets match."""
    theirs = champion.metrics if comparable(report, champion) and champion else {}
    names = sorted(set(report.metrics) | set(theirs))
    return [Row(n, report.metrics.get(n), theirs.get(n)) for n in names]
