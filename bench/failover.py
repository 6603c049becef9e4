"""Failover: how long the leader's loops are gone when it is killed, how long a deploy waits
when the replica running it is killed, and what a rolling restart costs the requests sent
meanwhile.

    .venv/bin/python bench/failover.py [--kills 20] [--deploy-kills 5] [--replicas 3]
                                       [--lease 10] [--renew 2] [--commands 500] [--webhooks 1000]

N bot processes (`python -m bot serve`) share one PostgreSQL store (scripts/postgres) and the
crash harness's stand-ins. Failover: SIGKILL whichever replica leads, time until another
replica holds the next term (it starts the singleton loops in the same step), restart the
killed one; repeat. Deploy kills: a `/deploy` sent to a follower, its ecspresso made slow,
SIGKILL of the replica running it once ecspresso runs; time until another replica has taken
the deploy (its runner lease lapsed), which must then succeed. Rolling restart: slash
commands and GitLab webhook deliveries go to the replicas in rotation, as a load balancer
sends them, while each replica in turn leaves the rotation, gets SIGTERM, starts again and
rejoins; then every command must have been acked and answered exactly once, every delivery
acked and processed once.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.sandbox.aws import MotoServer, running_moto
from bot.sandbox.crashes.flows import Driver
from bot.sandbox.crashes.observe import DEPLOY_FINAL, StoreReader
from bot.sandbox.crashes.slack import SlackSide
from bot.sandbox.fixtures.deploys import Scheduler
from bot.sandbox.people import PEOPLE
from bot.sandbox.stand_ins import SANDBOX_AWS
from tests.pg import running_postgres
from tests.replicas.cluster import Cluster, pid_of, running_cluster
from tests.replicas.load import rolling_restart


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--deploy-kills", type=int, default=5)
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


# ---- a deploy's runner killed ------------------------------------------------------------------


async def deploy_kills(cluster: Cluster, url: str, kills: int) -> list[float]:
    """Seconds from SIGKILL of the replica running a deploy to the deploy taken by another."""
    reader = StoreReader(url)
    seconds: list[float] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            side = await slack_to_follower(cluster, session)
            await Driver(side, reader, side.bot_url, session).run(("train",))
            for n in range(kills):
                side = await slack_to_follower(cluster, session)
                seconds.append(await deploy_kill(cluster, side, n))
    finally:
        await reader.close()
    return seconds


# ids of the sends here: apart from those of the rolling restart (they name replies, triggers)
DEPLOY_SENDS = itertools.count(1_000_000)


async def slack_to_follower(cluster: Cluster, session: aiohttp.ClientSession) -> SlackSide:
    leader, _ = await cluster.leader()
    follower = next(r for r in cluster.replicas if r is not leader and r.process.alive)
    world = cluster.world
    return SlackSide(world.stand_ins.slack, world.catcher, follower.url, session, ids=DEPLOY_SENDS)


async def deploy_kill(cluster: Cluster, side: SlackSide, n: int) -> float:
    cluster.slow_deploys(3600)  # ecspresso deploy sleeps until its group is ended
    await side.command(PEOPLE[0], "/deploy", "fraud stg")
    deploy_id, row = await cluster.running_deploy(timeout=120)
    assert row.runner is not None
    runner = cluster.by_pid(pid_of(row.runner))
    assert runner is not None
    cluster.slow_deploys(None)  # the one that takes it over runs at full speed
    await runner.process.kill()
    killed = time.monotonic()
    taken = await cluster.taken_over(deploy_id, row.attempt)
    took = time.monotonic() - killed
    state = await final_state(cluster, deploy_id)
    adopter = cluster.by_pid(pid_of(taken.runner or ""))
    print(
        f"  deploy kill {n + 1}: #{deploy_id} on {runner.name} -> "
        f"{adopter.name if adopter else '?'} in {took:.2f} s, {state}",
        flush=True,
    )
    await runner.process.start()
    return took


async def final_state(cluster: Cluster, deploy_id: int, wait: float = 180.0) -> str:
    """The deploy's final state (with why, if it failed), once it has one."""
    query = sa.text("SELECT state, detail FROM deployments WHERE id = :id")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        async with cluster.engine.connect() as conn:
            state, detail = (await conn.execute(query, {"id": deploy_id})).one()
        if state in DEPLOY_FINAL:
            return f"{state}: {detail}" if state == "failed" else str(state)
        await asyncio.sleep(0.2)
    return "not finished"


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
        print(f"deploy kills: {args.deploy_kills} kills of the replica running a deploy")
        adoptions = await deploy_kills(cluster, url, args.deploy_kills)
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
    if adoptions:
        print(
            f"deploy's runner killed -> deploy taken over: p50 {statistics.median(adoptions):.2f}"
            f" s, max {max(adoptions):.2f} s (bound: lease + one look)"
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
        aws = MotoServer(moto.endpoint_url)
        scheduler = Scheduler(aws.client("ecs")).start()  # ECS's scheduler runs the tasks
        stack.callback(scheduler.stop)
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="failover-")))
        asyncio.run(bench(args, admin_url, aws, root))


if __name__ == "__main__":
    main()
