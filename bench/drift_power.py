"""Drift tests on synthetic data: the false-alarm rate and the power to see a small shift.

    .venv/bin/python bench/drift_power.py [--sizes 200,2000,20000] [--windows 1000]
        [--shift-windows 200] [--shift-rows 2000] [--shift 0.5] [--rate 0.01]
        [--reference-rows 50000] [--windows-per-reference 10] [--seed 1]

20 features (12 normal, 3 log-normal, 2 small whole numbers with ties, 1 normal with 5% missing
values, 2 categorical of which one has rare categories) and a prediction derived from them; the
reference is built with the bot's own builder from ``--reference-rows`` rows, as a training job
would, and a new one is drawn every ``--windows-per-reference`` windows (the test is
two-sample: its rate is over the reference's sampling too). Each window is counted with the
bot's WindowCounts and judged with the bot's drift() at ``--rate``.

False alarms: windows from the reference's distribution in which ANY of the 21 profiles
alarmed (goal: at most the rate, within sampling error). Power: windows in which ``f00`` (a
normal feature) is shifted by ``--shift`` standard deviations; detected = f00 flagged
(goal: >= 95%).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.domain.monitoring.drift import DriftReport, drift
from bot.domain.monitoring.profiles import build_reference
from bot.domain.monitoring.reference import Reference
from bot.domain.monitoring.window import WindowCounts

NORMAL, LOGNORMAL, WHOLE = 12, 3, 2
COUNTRIES = np.array(["DE", "FR", "US", "GB", "NL"])
COUNTRY_P = np.array([0.4, 0.2, 0.25, 0.1, 0.05])
MERCHANTS = np.array([f"m{i:02}" for i in range(30)])
MERCHANT_P = (1 / np.arange(1, 31) ** 1.5) / (1 / np.arange(1, 31) ** 1.5).sum()


def columns(rng: np.random.Generator, rows: int, shift: float = 0.0) -> dict[str, Any]:
    """One synthetic sample; ``shift`` moves f00 by that many standard deviations."""
    data: dict[str, Any] = {}
    for i in range(NORMAL):
        data[f"f{i:02}"] = rng.normal(i, 1 + i / 10, rows)
    data["f00"] = data["f00"] + shift
    for i in range(LOGNORMAL):
        data[f"amount{i}"] = rng.lognormal(3 + i, 1.0, rows)
    for i in range(WHOLE):
        data[f"count{i}"] = rng.poisson(1.5 + 2 * i, rows)
    gappy = rng.normal(0, 1, rows)
    gappy[rng.random(rows) < 0.05] = math.nan
    data["gappy"] = gappy
    data["country"] = rng.choice(COUNTRIES, rows, p=COUNTRY_P)
    data["merchant"] = rng.choice(MERCHANTS, rows, p=MERCHANT_P)
    score = data["f01"] - 1 + rng.normal(0, 1, rows)
    data["prediction"] = np.where(score > 1.5, "fraud", "ok")
    return data


def reference(rng: np.random.Generator, rows: int) -> Reference:
    data = columns(rng, rows)
    prediction = data.pop("prediction")
    return build_reference(data, prediction)


def check(ref: Reference, data: dict[str, Any], rows: int, rate: float) -> DriftReport:
    counts = WindowCounts(ref)
    counts.add_columns(rows, data)
    return drift(counts, rate)


def false_alarms(args: argparse.Namespace, rows: int, rng: np.random.Generator) -> float:
    alarms = 0
    ref = reference(rng, args.reference_rows)
    for window in range(args.windows):
        if window and window % args.windows_per_reference == 0:
            ref = reference(rng, args.reference_rows)
        alarms += bool(check(ref, columns(rng, rows), rows, args.rate).drifted)
    return alarms / args.windows


def power(args: argparse.Namespace, rng: np.random.Generator) -> tuple[float, float]:
    """Share of shifted windows with f00 flagged, and with anything else flagged."""
    found = others = 0
    ref = reference(rng, args.reference_rows)
    for window in range(args.shift_windows):
        if window and window % args.windows_per_reference == 0:
            ref = reference(rng, args.reference_rows)
        data = columns(rng, args.shift_rows, shift=args.shift)
        flagged = {f.name for f in check(ref, data, args.shift_rows, args.rate).drifted}
        found += "f00" in flagged
        others += bool(flagged - {"f00"})
    return found / args.shift_windows, others / args.shift_windows


def binomial_bound(rate: float, trials: int) -> float:
    """The rate plus two standard errors: what 'within the rate' can mean with this many trials."""
    return rate + 2 * math.sqrt(rate * (1 - rate) / trials)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="200,2000,20000")
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--shift-windows", type=int, default=200)
    parser.add_argument("--shift-rows", type=int, default=2000)
    parser.add_argument("--shift", type=float, default=0.5)
    parser.add_argument("--rate", type=float, default=0.01)
    parser.add_argument("--reference-rows", type=int, default=50_000)
    parser.add_argument("--windows-per-reference", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    bound = binomial_bound(args.rate, args.windows)
    print(
        f"false alarms: {args.windows} windows each, 21 profiles, configured rate {args.rate:.1%}"
    )
    print(f"{'rows':>8} {'false alarms':>13} {'goal':>12} {'seconds':>8}")
    ok = True
    for rows in (int(s) for s in args.sizes.split(",")):
        started = time.perf_counter()
        rate = false_alarms(args, rows, rng)
        ok &= rate <= bound
        print(
            f"{rows:>8} {rate:>13.2%} {'<= ' + format(bound, '.2%'):>12} "
            f"{time.perf_counter() - started:>8.1f}"
        )
    found, others = power(args, rng)
    ok &= found >= 0.95
    print(
        f"power: {args.shift} sd shift of f00, {args.shift_windows} windows of "
        f"{args.shift_rows} rows: f00 flagged in {found:.1%} (goal >= 95%), "
        f"another profile flagged in {others:.1%}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
