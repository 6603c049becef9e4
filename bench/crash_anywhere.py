"""Crash anywhere: seeded trials of the whole lifecycle, each SIGKILLing the bot at a random
moment, and the outcome counts (clean, or which invariant broke).

    .venv/bin/python bench/crash_anywhere.py [--trials 100] [--first-seed 1] [--parallel 4]
                                             [--points] [--keep DIR]
    .venv/bin/python bench/crash_anywhere.py --burst --trials 3 [--kills 8] [--pipelines 50]

Each trial runs the bot as its own process (`python -m bot serve`) on a fresh SQLite store,
against stand-ins that outlive it (Slack, GitLab, moto, the ecspresso stand-in): train ->
stg -> prod with two approvals and a failing pipeline's webhooks, a SIGKILL at the trial's
moment, a restart on the same store, the flow driven to its end, then the invariants of
bot/sandbox/crashes/invariants.py. ``--points`` adds a trial at every named crash point.

``--burst`` runs webhook bursts instead: GitLab delivers ``--pipelines`` failing pipelines'
stories (20 pipelines at a time, redelivering whatever was not answered 200) while the bot is
SIGKILLed ``--kills`` times at seeded moments and restarted after each; the invariants then
count duplicate CI cards and failed-job thread replies (goal: none).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bot.sandbox.crashes.invariants import INVARIANTS
from bot.sandbox.crashes.suite import concurrency, run_trials, sqlite_stores
from bot.sandbox.crashes.trial import NAMED, Outcome, Trial, burst_trial, random_trial


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="random trials (default 100)")
    parser.add_argument("--first-seed", type=int, default=1, help="seed of the first trial")
    parser.add_argument("--parallel", type=int, default=concurrency(), help="trials at a time")
    parser.add_argument("--points", action="store_true", help="also every named crash point")
    parser.add_argument("--keep", type=Path, help="keep each trial's logs and store here")
    parser.add_argument("--verbose", action="store_true", help="print each broken trial")
    parser.add_argument("--burst", action="store_true", help="webhook bursts with kills")
    parser.add_argument("--kills", type=int, default=8, help="kills per burst (default 8)")
    parser.add_argument("--pipelines", type=int, default=50, help="pipelines per burst")
    return parser.parse_args()


def show(verbose: bool) -> Callable[[Outcome], None]:
    def shown(outcome: Outcome) -> None:
        print(f"{outcome.trial.name:>24}  {outcome.summary()}  ({outcome.seconds:.0f}s)")
        if outcome.kills:
            print(f"{'':>24}  kills at: {', '.join(outcome.kills)}")
        if verbose and outcome.summary() != "clean":
            print(outcome.report())
        sys.stdout.flush()

    return shown


def counts(outcomes: list[Outcome]) -> None:
    by_outcome = Counter(o.summary() for o in outcomes)
    by_invariant = Counter(name for o in outcomes for name in o.broken)
    print(f"\n{len(outcomes)} trials")
    for summary, n in by_outcome.most_common():
        print(f"  {n:4d}  {summary}")
    print("broken, per invariant:")
    for name in INVARIANTS:
        print(f"  {by_invariant[name]:4d}  {name}")


async def main() -> int:
    args = arguments()
    trials: list[Trial] = list(NAMED.values()) if args.points else []
    seeds = range(args.first_seed, args.first_seed + args.trials)
    if args.burst:
        trials += [burst_trial(s, kills=args.kills, pipelines=args.pipelines) for s in seeds]
    else:
        trials += [random_trial(s) for s in seeds]
    with tempfile.TemporaryDirectory(prefix="crash-anywhere-") as tmp:
        directory = args.keep or Path(tmp)
        started = time.monotonic()
        outcomes = await run_trials(
            trials,
            sqlite_stores(directory),
            directory,
            parallel=args.parallel,
            on_outcome=show(args.verbose),
        )
        elapsed = time.monotonic() - started
    ordered = [outcomes[t.name] for t in trials]
    counts(ordered)
    print(f"{elapsed:.0f}s in all, {args.parallel} at a time")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
