"""Drift statistics: the merge plan, the two-sample test, Holm across profiles, effect sizes,
and a small seeded run of bench/drift_power.py."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from bench import drift_power
from bot.domain.monitoring.drift import FeatureDrift, drift, effect, holm, homogeneity, merge_plan
from bot.domain.monitoring.profiles import build_reference
from bot.domain.monitoring.reference import CategoricalProfile, NumericProfile
from bot.domain.monitoring.window import WindowCounts


def test_the_statistic_is_the_chi_squared_test_of_homogeneity() -> None:
    ref = np.array([120.0, 80, 50, 30])
    win = np.array([20.0, 30, 25, 5])
    statistic, dof, p_value = homogeneity(ref, win)
    expected = chi2_contingency(np.vstack([ref, win]), correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert dof == expected.dof == 3
    assert p_value == pytest.approx(expected.pvalue)


def test_small_bins_merge_with_their_neighbours_by_the_windows_size() -> None:
    profile = NumericProfile((1.0, 2.0, 3.0, 4.0), (100, 100, 100, 100, 100), missing=5)
    assert merge_plan(profile, 1000, 5) == [[0], [1], [2], [3], [4], [5]]
    # 40 rows: 8 expected per bin, missing 0.4 expected -> pooled into the smallest group
    assert merge_plan(profile, 40, 5) == [[0, 5], [1], [2], [3], [4]]
    # 13 rows: 2.6 per bin -> pairs, the odd one joins the last pair
    assert merge_plan(profile, 13, 5) == [[0, 1, 5], [2, 3, 4]]
    assert merge_plan(profile, 4, 5) == [[0, 1, 2, 3, 4, 5]]  # untestable: one group


def test_rare_categories_other_and_missing_are_pooled() -> None:
    profile = CategoricalProfile({"DE": 500, "FR": 300, "NL": 5, "LU": 1}, other=2, missing=0)
    # columns: DE FR NL LU other missing; 100 rows: NL 0.6, LU, other, missing < 5 expected
    assert merge_plan(profile, 100, 5) == [[0], [1, 2, 3, 4, 5]]


def test_holm_steps_down_and_stops_at_the_first_pass() -> None:
    results = [
        FeatureDrift("a", 100, True, p_value=0.001),
        FeatureDrift("b", 100, True, p_value=0.004),
        FeatureDrift("c", 100, True, p_value=0.02),
        FeatureDrift("d", 100, False, note="too few rows"),
    ]
    judged = {r.name: r for r in holm(results, 0.01)}
    assert judged["a"].drifted and judged["a"].level == pytest.approx(0.01 / 3)
    assert judged["b"].drifted and judged["b"].level == pytest.approx(0.01 / 2)
    assert not judged["c"].drifted and judged["c"].level == pytest.approx(0.01)
    assert not judged["d"].tested and not judged["d"].drifted


def test_effect_sizes_are_zero_for_the_same_shape_and_grow_with_a_shift() -> None:
    same = effect(np.array([100.0, 200, 300]), np.array([10.0, 20, 30]))
    moved = effect(np.array([100.0, 200, 300]), np.array([30.0, 20, 10]))
    assert same == pytest.approx((0.0, 0.0), abs=0.01)
    assert moved[0] > 0.5 and 0.3 < moved[1] < 1


def sample(rng: np.random.Generator, rows: int, shift: float = 0.0) -> dict[str, Any]:
    return {
        "x": rng.normal(shift, 1, rows),
        "country": rng.choice(np.array(["DE", "FR", "US"]), rows, p=[0.5, 0.3, 0.2]),
    }


def test_a_shifted_feature_is_flagged_and_named_with_its_effect() -> None:
    rng = np.random.default_rng(11)
    reference = build_reference(sample(rng, 20_000))
    counts = WindowCounts(reference)
    counts.add_columns(2000, sample(rng, 2000, shift=0.5))
    report = drift(counts, 0.01)
    (flagged,) = report.drifted
    assert flagged.name == "x" and flagged.psi > 0.1 and flagged.p_value < 1e-10
    assert flagged.biggest.startswith("> ")  # the top bin gained most


def test_a_window_counted_record_by_record_matches_column_wise() -> None:
    rng = np.random.default_rng(12)
    reference = build_reference(sample(rng, 5000))
    data = sample(rng, 300)
    by_columns = WindowCounts(reference)
    by_columns.add_columns(300, data)
    pairs = zip(data["x"], data["country"], strict=True)
    records: list[dict[str, Any]] = [{"x": float(x), "country": str(c)} for x, c in pairs]
    records[0] = {"x": "12", "country": ["DE"]}  # wrong types: counted missing and invalid
    by_records = WindowCounts(reference)
    by_records.add(records, [None] * 300)
    assert by_records.invalid() == {"x": 1, "country": 1}
    for name in ("x", "country"):
        a, b = by_columns.tallies[name].counts, by_records.tallies[name].counts
        assert int(b[-1]) == 1 and int(abs(a - b).sum()) == 2


def test_too_few_rows_are_not_tested() -> None:
    reference = build_reference({"x": list(range(100))})
    counts = WindowCounts(reference)
    counts.add([{"x": 5}, {"x": 50}], [None, None])
    (result,) = drift(counts).features
    assert not result.tested and "too few rows (2)" in result.note


def test_a_bad_rate_is_refused() -> None:
    counts = WindowCounts(build_reference({"x": [1, 2, 3]}))
    with pytest.raises(ValueError, match="between 0 and 1"):
        drift(counts, 1.5)


def test_the_power_bench_runs_small_and_seeded(capsys: pytest.CaptureFixture[str]) -> None:
    argv = "--sizes 500 --windows 20 --shift-windows 10 --reference-rows 5000 --seed 3"
    drift_power.main(argv.split())
    out = capsys.readouterr().out
    assert "f00 flagged in 100.0%" in out
    (row,) = [line.split() for line in out.splitlines() if line.strip().startswith("500 ")]
    assert float(row[1].rstrip("%")) <= 10.0  # at most 2 of 20 no-drift windows


def test_numpy_is_loaded_only_when_monitoring_counts() -> None:
    code = (
        "import sys; import bot.domain.monitoring.drift, bot.domain.monitoring.window, "
        "bot.domain.monitoring.profiles, integrations.aws.predictions; "
        "print('numpy' in sys.modules, 'scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
