"""Failover: how long the leader's loops are gone when it is killed, and what a rolling restart
costs the requests sent meanwhile.

    .venv/bin/python bench/failover.py [--kills 20] [--replicas 3] [--lease 10] [--renew 2]
                                       [--commands 500] [--webhooks 1000]

N bot processes (`python -m bot serve`) share one PostgreSQL store (scripts/postgres) and the
crash harness's stand-ins. Failover: SIGKILL whichever replica leads, time until another
replica holds the next term (it starts the singleton loops in the same step), restart the
killed one; repeat. Rolling restart: slash commands and GitLab webhook deliveries go to the
replicas in rotation, as a load balancer sends them, while each replica in turn leaves the
rotation, gets SIGTERM, starts again and rejoins; then every command must have been acked and
answered exactly once, every delivery acked and processed once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.sandbox.aws import MotoServer, running_moto
from bot.sandbox.stand_ins import SANDBOX_AWS
from tests.pg import running_postgres
from tests.replicas.cluster import Cluster, running_cluster
from tests.replicas.load import rolling_restart


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--lease", type=float, default=10.0, help="store.leader_lease_seconds")
    parser.add_argument("--renew", type=float, default=2.0, help="store.leader_renew_seconds")
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--webhooks", type=int, default=1000)
    return parser.parse_args()


# ---- failover -----------------------------------------------------------------------------------


async def failovers(cluster: Cluster, kills: int) -> list[float]:
    """Seconds from SIGKILL of the leader to the next term held by a live replica, per kill."""
    _, term = await cluster.leader()
    seconds = []
    for n in range(kills):
        leader, term = await cluster.leader(after_term=term - 1)
        await leader.process.kill()
        killed = time.monotonic()
        successor, term = await cluster.leader(after_term=term, timeout=120)
        seconds.append(time.monotonic() - killed)
        print(
            f"  kill {n + 1}: {leader.name} -> {successor.name} (term {term}) "
            f"in {seconds[-1]:.2f} s",
            flush=True,
        )
        await leader.process.start()
    return seconds


# ---- main ---------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def fresh_database(admin_url: str) -> str:
    name = f"failover_{uuid.uuid4().hex[:10]}"
    plain = make_url(admin_url).set(drivername="postgresql")
    conn = await asyncpg.connect(plain.render_as_string(hide_password=False), timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        await conn.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def bench(args: argparse.Namespace, admin_url: str, aws: MotoServer, root: Path) -> None:
    url = await fresh_database(admin_url)
    async with running_cluster(
        root, aws, url, count=args.replicas, lease=args.lease, renew=args.renew
    ) as cluster:
        for replica in cluster.replicas:
            await replica.process.start()
        print(f"failover: {args.kills} kills of the leader among {args.replicas} replicas")
        seconds = await failovers(cluster, args.kills)
        print("rolling restart: each replica in turn, under load")
        figures = (await rolling_restart(cluster, url, args.commands, args.webhooks)).figures()
    print()
    print(f"lease {args.lease:g} s, renewed every {args.renew:g} s; {len(seconds)} kills")
    if seconds:
        print(
            f"leader killed -> loops running elsewhere: p50 {statistics.median(seconds):.2f} s,"
            f" p99 {percentile(seconds, 0.99):.2f} s, max {max(seconds):.2f} s"
            " (goal: p99 < 15 s)"
        )
    for name, value in figures.items():
        print(f"{name}: {value}")
    print("(goal: 0 acks failed, every command answered exactly once)")


def main() -> None:
    args = arguments()
    for name, value in SANDBOX_AWS.items():
        os.environ.setdefault(name, value)
    with ExitStack() as stack:
        admin_url = stack.enter_context(running_postgres())
        moto = stack.enter_context(running_moto(ecs_running=1))
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="failover-")))
        asyncio.run(bench(args, admin_url, MotoServer(moto.endpoint_url), root))


if __name__ == "__main__":
    main()
