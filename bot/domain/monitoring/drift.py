"""Drift of a window against the reference, per feature and for the prediction.

The test: a chi-squared test of homogeneity on the 2 x k table (reference counts, window
counts) over the reference's bins or categories. It is a two-sample test, so the reference's
own sampling noise is accounted for. Columns whose expected window count is below
``min_expected`` are merged first (adjacent bins for numbers; rare categories, ``other`` and
missing pooled) so the chi-squared approximation holds; the plan depends on the reference and
the window's size only, never on the window's counts. The p-values of all profiles go through
Holm's step-down procedure, so the chance that a check raises any false alarm is at most
``false_alarm_rate`` whatever the window's size. PSI and the Jensen-Shannon distance are the
effect sizes shown to people; they never decide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot.domain.monitoring.reference import NumericProfile, Profile
from bot.domain.monitoring.window import WindowCounts, columns, reference_counts

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MIN_EXPECTED = 5.0
SMOOTHING = 0.5  # counts added to every column before PSI / JS, so empty columns stay finite


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    rows: int
    tested: bool
    statistic: float = 0.0
    dof: int = 0
    p_value: float = 1.0
    level: float = 0.0  # the Holm level this p-value was held against
    drifted: bool = False
    psi: float = 0.0
    js: float = 0.0  # Jensen-Shannon distance, base 2: 0 (same) .. 1 (disjoint)
    biggest: str = ""  # the column whose share moved most, e.g. "> 120.5: 10% -> 31%"
    note: str = ""


@dataclass(frozen=True)
class DriftReport:
    rows: int
    false_alarm_rate: float
    features: list[FeatureDrift]

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.drifted]


def merge_plan(profile: Profile, window_rows: int, min_expected: float) -> list[list[int]]:
    """Groups of column indices tested together, from the reference and the window size."""
    ref = reference_counts(profile)
    total = sum(ref)
    expected = [window_rows * r / total for r in ref] if total else [0.0] * len(ref)
    if isinstance(profile, NumericProfile):
        groups = _adjacent(list(range(len(ref) - 1)), expected, min_expected)
        pooled = [len(ref) - 1]  # missing
    else:
        kept = [i for i in range(len(ref) - 2) if expected[i] >= min_expected]
        groups = [[i] for i in kept]
        pooled = [i for i in range(len(ref)) if i not in set(kept)]
    return _pool(groups, pooled, expected, min_expected)


def _adjacent(indices: list[int], expected: list[float], floor: float) -> list[list[int]]:
    groups: list[list[int]] = []
    current: list[int] = []
    for i in indices:
        current.append(i)
        if sum(expected[j] for j in current) >= floor:
            groups.append(current)
            current = []
    if current and groups:
        groups[-1].extend(current)
    elif current:
        groups.append(current)
    return groups


def _pool(
    groups: list[list[int]], pooled: list[int], expected: list[float], floor: float
) -> list[list[int]]:
    """Pooled columns make a group of their own when big enough, else join the smallest."""
    if sum(expected[i] for i in pooled) >= floor or not groups:
        return [*groups, pooled]
    smallest = min(range(len(groups)), key=lambda g: sum(expected[i] for i in groups[g]))
    groups[smallest] = groups[smallest] + pooled
    return groups


def homogeneity(
    ref: npt.NDArray[np.float64], win: npt.NDArray[np.float64]
) -> tuple[float, int, float]:
    """Pearson's chi-squared for the 2 x k table [ref; win]: statistic, dof, p-value."""
    import numpy as np
    from scipy.special import chdtrc  # type: ignore[import-untyped]  # scipy.stats loads 2x slower

    keep = (ref + win) > 0
    ref, win = ref[keep], win[keep]
    if ref.size < 2 or ref.sum() == 0 or win.sum() == 0:
        return 0.0, 0, 1.0
    table = np.vstack([ref, win])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = int(ref.size - 1)
    return statistic, dof, float(chdtrc(dof, statistic))  # the chi-squared survival function


def effect(ref: npt.NDArray[np.float64], win: npt.NDArray[np.float64]) -> tuple[float, float]:
    """PSI and the Jensen-Shannon distance (base 2) of the two distributions, smoothed."""
    import numpy as np

    p = (ref + SMOOTHING) / (ref + SMOOTHING).sum()
    q = (win + SMOOTHING) / (win + SMOOTHING).sum()
    psi = float(((q - p) * np.log(q / p)).sum())
    m = (p + q) / 2
    js = float(np.sqrt(max(0.0, (p * np.log2(p / m) + q * np.log2(q / m)).sum() / 2)))
    return psi, js


def _grouped(
    values: Sequence[int] | npt.NDArray[np.int64], plan: list[list[int]]
) -> npt.NDArray[np.float64]:
    import numpy as np

    return np.array([sum(int(values[i]) for i in group) for group in plan], dtype=np.float64)


def _biggest(profile: Profile, ref: Sequence[int], win: npt.NDArray[np.int64]) -> str:
    names = columns(profile)
    ref_total, win_total = sum(ref), int(win.sum())
    if not ref_total or not win_total:
        return ""
    shares = [(r / ref_total, int(w) / win_total) for r, w in zip(ref, win, strict=True)]
    i = max(range(len(shares)), key=lambda k: abs(shares[k][1] - shares[k][0]))
    return f"{names[i]}: {shares[i][0]:.0%} -> {shares[i][1]:.0%}"


def feature_drift(
    name: str, profile: Profile, win: npt.NDArray[np.int64], min_expected: float = MIN_EXPECTED
) -> FeatureDrift:
    """One profile's test and effect sizes; not yet judged (Holm needs every p-value)."""
    rows = int(win.sum())
    plan = merge_plan(profile, rows, min_expected)
    if rows == 0 or len(plan) < 2:
        note = "no rows" if rows == 0 else f"too few rows ({rows}) to compare distributions"
        return FeatureDrift(name, rows, tested=False, note=note)
    ref = reference_counts(profile)
    ref_g, win_g = _grouped(ref, plan), _grouped(win, plan)
    statistic, dof, p_value = homogeneity(ref_g, win_g)
    psi, js = effect(ref_g, win_g)
    return FeatureDrift(
        name,
        rows,
        True,
        statistic,
        dof,
        p_value,
        psi=psi,
        js=js,
        biggest=_biggest(profile, ref, win),
    )


def holm(results: list[FeatureDrift], false_alarm_rate: float) -> list[FeatureDrift]:
    """Holm's step-down: the i-th smallest of m p-values is held against rate / (m - i), and
    testing stops at the first that passes; what was flagged before it has drifted."""
    tested = sorted((r for r in results if r.tested), key=lambda r: r.p_value)
    judged: dict[str, FeatureDrift] = {}
    still = True
    for rank, result in enumerate(tested):
        level = false_alarm_rate / (len(tested) - rank)
        still = still and result.p_value <= level
        judged[result.name] = _with(result, level=level, drifted=still)
    return [judged.get(r.name, r) for r in results]


def _with(result: FeatureDrift, *, level: float, drifted: bool) -> FeatureDrift:
    return replace(result, level=level, drifted=drifted)


def drift(
    counts: WindowCounts, false_alarm_rate: float = 0.01, min_expected: float = MIN_EXPECTED
) -> DriftReport:
    """Every profile of the reference against the window's counts."""
    if not 0 < false_alarm_rate < 1 or not math.isfinite(false_alarm_rate):
        raise ValueError(f"false_alarm_rate must be between 0 and 1, not {false_alarm_rate}")
    results = [
        feature_drift(name, tally.profile, tally.counts, min_expected)
        for name, tally in counts.tallies.items()
    ]
    return DriftReport(counts.rows, false_alarm_rate, holm(results, false_alarm_rate))
