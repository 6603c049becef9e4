"""The daily digest's chart: drift per feature against its threshold, and production accuracy
over time with the deploys marked. Pure: data in, PNG bytes out. matplotlib is imported when a
chart is drawn (Agg, through a Figure of its own: no pyplot, no display, safe in a thread)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_BARS = 25
WIDTH, HEIGHT, DPI = 10.0, 7.5, 100
OK, DRIFTED, LINE = "#4c78a8", "#e45756", "#555555"


@dataclass(frozen=True)
class DriftBar:
    """One feature (or the prediction): the drift statistic shown and the threshold it is held
    to (e.g. PSI, or the test statistic and its critical value). ``drifted`` is the check's
    verdict when it has one (Holm-adjusted); otherwise statistic > threshold."""

    feature: str
    statistic: float
    threshold: float
    drifted: bool | None = None

    @property
    def flagged(self) -> bool:
        return self.drifted if self.drifted is not None else self.statistic > self.threshold

    @property
    def ratio(self) -> float:
        return self.statistic / self.threshold if self.threshold > 0 else float("inf")


@dataclass(frozen=True)
class AccuracyPoint:
    """Production accuracy of one window, with its confidence interval when known."""

    at: datetime
    accuracy: float
    low: float | None = None
    high: float | None = None
    labels: int = 0


@dataclass(frozen=True)
class DeployMark:
    at: datetime
    deploy_id: int


@dataclass(frozen=True)
class DigestData:
    model: str
    env: str
    drift: Sequence[DriftBar] = ()
    accuracy: Sequence[AccuracyPoint] = ()
    deploys: Sequence[DeployMark] = ()
    test_accuracy: float | None = None  # the deployed run's, the yardstick
    period: str = "last 24 h"


@dataclass(frozen=True)
class DigestChart:
    png: bytes
    marked: tuple[int, ...] = ()  # deploy ids drawn as vertical lines
    shown: tuple[str, ...] = ()  # features drawn as bars, most drifted first
    left_out: int = 0  # features not drawn (only the MAX_BARS most drifted are)


def render_digest(data: DigestData) -> DigestChart:
    """The digest PNG (1000 x 750 pixels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    drift_axes, accuracy_axes = figure.subplots(2, 1, height_ratios=(1.1, 1.0))
    figure.suptitle(f"{data.model} · {data.env} · {data.period}", fontsize=13)
    shown, left_out = _drift(drift_axes, data.drift)
    marked = _accuracy(accuracy_axes, data)
    out = BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return DigestChart(out.getvalue(), marked, shown, left_out)


def _drift(axes: Axes, bars: Sequence[DriftBar]) -> tuple[tuple[str, ...], int]:
    axes.set_title("Drift per feature: statistic against its threshold", fontsize=11)
    if not bars:
        axes.text(0.5, 0.5, "no drift check in this period", ha="center", transform=axes.transAxes)
        axes.set_axis_off()
        return (), 0
    ranked = sorted(bars, key=lambda b: (not b.flagged, -b.ratio, b.feature))[:MAX_BARS]
    names = [b.feature for b in ranked]
    positions = range(len(ranked))
    colors = [DRIFTED if b.flagged else OK for b in ranked]
    axes.bar(positions, [b.statistic for b in ranked], color=colors)
    axes.scatter(positions, [b.threshold for b in ranked], marker="_", s=400, color=LINE, zorder=3)
    axes.set_xticks(list(positions), names, rotation=40, ha="right", fontsize=8)
    axes.set_ylabel("statistic (bar) / threshold (—)")
    left_out = len(bars) - len(ranked)
    if left_out:
        axes.text(0.99, 0.95, f"+{left_out} more not shown", ha="right", transform=axes.transAxes)
    return tuple(names), left_out


def _accuracy(axes: Axes, data: DigestData) -> tuple[int, ...]:
    axes.set_title("Production accuracy (labelled predictions)", fontsize=11)
    points = sorted(data.accuracy, key=lambda p: p.at)
    if points:
        times = [_hours(p.at) for p in points]
        axes.plot(times, [p.accuracy for p in points], marker="o", color=OK, label="production")
        bounded = [p for p in points if p.low is not None and p.high is not None]
        if bounded:
            axes.fill_between(
                [_hours(p.at) for p in bounded],
                [p.low or 0.0 for p in bounded],
                [p.high or 0.0 for p in bounded],
                color=OK,
                alpha=0.2,
                label="confidence interval",
            )
    else:
        axes.text(0.5, 0.5, "no labels in this period", ha="center", transform=axes.transAxes)
    if data.test_accuracy is not None:
        axes.axhline(data.test_accuracy, color=LINE, linestyle="--", label="test set")
    marked = _deploys(axes, points, data.deploys)
    if points or marked:
        _time_ticks(axes)
    else:
        axes.set_xticks([])
    axes.set_ylabel("accuracy")
    if points or data.test_accuracy is not None:
        axes.legend(loc="lower left", fontsize=8)
    return marked


def _deploys(
    axes: Axes, points: Sequence[AccuracyPoint], deploys: Sequence[DeployMark]
) -> tuple[int, ...]:
    """Deploys inside the plotted period, as labelled vertical lines (all of them when there
    is no accuracy to plot)."""
    start, end = (points[0].at, points[-1].at) if points else (None, None)
    marked: list[int] = []
    for mark in sorted(deploys, key=lambda d: d.at):
        if start is not None and end is not None and not start <= mark.at <= end:
            continue
        at = _hours(mark.at)
        axes.axvline(at, color=DRIFTED, linestyle=":", linewidth=1.5)
        axes.annotate(
            f"#{mark.deploy_id}",
            xy=(at, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            color=DRIFTED,
            fontsize=9,
        )
        marked.append(mark.deploy_id)
    return tuple(marked)


def _hours(at: datetime) -> float:
    """The x axis: hours since the epoch (ticks are labelled in UTC by ``_time_ticks``)."""
    return at.timestamp() / 3600.0


def _time_ticks(axes: Axes, count: int = 6) -> None:
    low, high = axes.get_xlim()
    if high <= low:
        return
    step = (high - low) / (count - 1)
    ticks = [low + i * step for i in range(count)]
    labels = [datetime.fromtimestamp(t * 3600.0, UTC).strftime("%d %b %H:%M") for t in ticks]
    axes.set_xticks(ticks, labels, fontsize=8)
    axes.set_xlabel("UTC")
