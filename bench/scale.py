"""Command latency and event-loop lag at 10 / 1,000 / 10,000 runs and deploys in the store.

    .venv/bin/python bench/scale.py [--sizes 10,1000,10000] [--repeat 5] [--poll-runs 1000]

For each size a fresh sandbox (the real bot on SQLite, the Slack and GitLab stand-ins in the
same process) gets that many active runs, finished runs and deploys of `fraud` written into its
store; then every /train and /deploy command below runs ``--repeat`` times through the handlers'
dispatch (the code the interaction processor runs after the ack). Printed: the median latency,
the statements and rows each command read, and the ratio against the 10-row size measured in
the same run. Then the real GitLab poller follows ``--poll-runs`` running pipelines for three
rounds while the bot's loop-lag heartbeat records how late the loop wakes (p50/p99/max).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import intents as i
from bot.logs import configure_logging
from bot.sandbox.runner import Sandbox, running_sandbox
from bot.store.schema import runs as runs_table
from handlers import deploy_commands, train_commands
from tests import sql_count
from tests.seed import run_row, seed

Command = Callable[[Sandbox, int], Awaitable[object]]


def commands(size: int) -> dict[str, Command]:
    middle = max(1, size // 20)

    def train(actor: str, intent: i.TrainIntent) -> Command:
        return lambda s, _: train_commands.dispatch(s.bot.deps.training, actor, intent)

    def deploy(intent: i.DeployIntent) -> Command:
        return lambda s, _: deploy_commands.dispatch(s.bot.deps, "U0DAVE", intent)

    return {
        "/train list": train("U0DAVE", i.TrainList()),
        "/train list fraud": train("U0DAVE", i.TrainList("fraud")),
        "/train list fraud page=<mid>": train("U0DAVE", i.TrainList("fraud", page=middle)),
        "/train fraud status 1": train("U0DAVE", i.TrainStatus("fraud", 1)),
        "/train fraud (start, quota)": train("U0ALICE", i.TrainStart("fraud", ref="main")),
        "/deploy fraud history prod": deploy(i.DeployHistory("fraud", "prod")),
        "/deploy fraud history prod page=<mid>": deploy(i.DeployHistory("fraud", "prod", middle)),
        "/deploy fraud status prod": deploy(i.DeployStatus("fraud", "prod")),
    }


async def measure_size(size: int, repeat: int) -> dict[str, tuple[float, int, int, float]]:
    """Per command: median ms, statements, rows, and the loop's worst lag (ms) meanwhile."""
    found: dict[str, tuple[float, int, int, float]] = {}
    async with running_sandbox() as sandbox:
        sandbox.gitlab.auto_advance(None)
        await seed(sandbox.bot.store, active=size, finished=size, deploys=size)
        sql_count.install(sandbox.bot.store.db.engine)
        lag = sandbox.bot.lag
        assert lag is not None
        for name, command in commands(size).items():
            await command(sandbox, 0)  # warm
            lag.reset()
            times = []
            for n in range(repeat):
                with sql_count.counting() as counted:
                    began = time.perf_counter()
                    await command(sandbox, n)
                    times.append(time.perf_counter() - began)
            found[name] = (
                statistics.median(times) * 1000,
                len(counted.statements),
                counted.rows,
                lag.max * 1000,
            )
        await sandbox.bot.notifier.flush()
    return found


async def measure_poll(runs: int, rounds: int = 3) -> tuple[float, float, float, int, float]:
    """The sandbox's own GitLab poller following ``runs`` running pipelines for ``rounds``
    rounds (one pipeline list per project each): loop lag while it polls (p50, p99, max in
    ms), the GitLab requests it made, and the seconds that took."""
    async with running_sandbox() as sandbox:
        gitlab = sandbox.gitlab
        gitlab.auto_advance(None)
        project = gitlab.state.project("ml/fraud")
        rows = []
        for n in range(runs):
            pipeline = gitlab.state.create(
                project, "main", source="trigger", variables={}, inputs={}
            )
            gitlab.advance("ml/fraud", pipeline.id)
            row = run_row(n, "fraud", "running", "gitlab")
            rows.append(row | {"pipeline_id": pipeline.id, "gpus": 0})
        lag = sandbox.bot.lag
        assert lag is not None
        listing = r"/api/v4/projects/[^/]+/pipelines$"
        lists, total = len(gitlab.calls_to("GET", listing)), len(gitlab.calls)
        async with sandbox.bot.store.db.write() as conn:
            await conn.execute(runs_table.insert(), rows)
        lag.reset()
        began = time.perf_counter()
        # the stand-in records calls without an event to wait on: look every 0.25 s
        while len(gitlab.calls_to("GET", listing)) - lists < rounds + 1:  # noqa: ASYNC110
            await asyncio.sleep(0.25)
        took = time.perf_counter() - began
        reads = len(gitlab.calls) - total
        p50, p99, worst = lag.percentile(50), lag.percentile(99), lag.max
    return p50 * 1000, p99 * 1000, worst * 1000, reads, took


async def main(sizes: list[int], repeat: int, poll_runs: int) -> None:
    configure_logging("warning")
    results = {size: await measure_size(size, repeat) for size in sizes}
    base = sizes[0]
    print(f"command latency (median of {repeat}) by rows in the store; ratio against {base}")
    header = f"{'command':<40}" + "".join(f"{f'{s:,} rows':>14}" for s in sizes)
    print(header + f"{'ratio':>8}{'stmts':>7}{'rows read':>10}{'worst lag':>11}")
    for name in results[base]:
        cells = "".join(f"{results[s][name][0]:11.1f} ms" for s in sizes)
        top = results[sizes[-1]][name]
        ratio = top[0] / max(results[base][name][0], 1e-9)
        print(f"{name:<40}{cells}{ratio:8.2f}{top[1]:7}{top[2]:10}{top[3]:8.1f} ms")
    if poll_runs:
        p50, p99, worst, reads, took = await measure_poll(poll_runs)
        print(
            f"GitLab poll of {poll_runs:,} running pipelines: {reads} requests "
            f"over 3 rounds in "
            f"{took:.1f} s; loop lag p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--poll-runs", type=int, default=1000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    asyncio.run(main(sizes, args.repeat, args.poll_runs))
