"""Requests sent to replicas in rotation, as a load balancer sends them, during a rolling
restart: each replica in turn leaves the rotation, gets SIGTERM, starts again and rejoins."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
import sqlalchemy as sa

from bot.sandbox.crashes.invariants import cards_per_key
from bot.sandbox.crashes.observe import StoreReader
from bot.sandbox.crashes.slack import Sent, SlackSide
from bot.sandbox.gitlab.hooks import pipeline_story
from bot.sandbox.people import PEOPLE, WEBHOOK_SECRET
from bot.sandbox.webhook_replay import gitlab_headers
from tests.replicas.cluster import Cluster, Replica

DRAIN_SECONDS = 1.0  # a replica leaves the rotation this long before SIGTERM (the preStop)
SETTLE_TIMEOUT = 120.0
PIPELINE = 7001  # every delivery tells part of this pipeline's story: one CI card


@dataclass
class Load:
    rotation: list[Replica]
    sides: dict[str, SlackSide]
    session: aiohttp.ClientSession
    commands: list[Sent] = field(default_factory=list)
    hooks: dict[str, bool] = field(default_factory=dict)  # Idempotency-Key -> acked
    turn: itertools.count[int] = field(default_factory=itertools.count)

    def next_replica(self) -> Replica:
        return self.rotation[next(self.turn) % len(self.rotation)]

    async def command(self, n: int) -> None:
        side = self.sides[self.next_replica().name]
        person = PEOPLE[n % len(PEOPLE)]
        self.commands.append(await side.command(person, "/deploy", "fraud history stg"))

    async def webhook(self, n: int, body: bytes) -> None:
        key = f"load-{n}-{uuid.uuid4().hex[:8]}"
        headers = gitlab_headers(body, WEBHOOK_SECRET, idempotency_key=key)
        url = f"{self.next_replica().url}/gitlab/webhook"
        self.hooks[key] = False
        try:
            async with self.session.post(url, data=body, headers=headers) as response:
                await response.read()
                self.hooks[key] = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            pass

    def replies(self, sent: Sent) -> int:
        return len(next(iter(self.sides.values())).replies(sent))


@dataclass(frozen=True)
class Restarted:
    """What a rolling restart under load did to the requests sent meanwhile."""

    seconds: float
    commands: int
    command_acks_failed: int
    commands_never_answered: int
    commands_answered_twice: int
    webhooks: int
    webhook_acks_failed: int
    webhooks_not_processed: int
    duplicate_cards: list[str]

    def figures(self) -> dict[str, object]:
        return {
            "rolling restart took (s)": round(self.seconds, 1),
            "commands sent": self.commands,
            "command acks failed": self.command_acks_failed,
            "commands never answered": self.commands_never_answered,
            "commands answered more than once": self.commands_answered_twice,
            "webhooks sent": self.webhooks,
            "webhook acks failed": self.webhook_acks_failed,
            "webhooks not processed": self.webhooks_not_processed,
            "cards posted more than once": len(self.duplicate_cards),
        }


async def send_all(load: Load, commands: int, webhooks: int, seconds: float) -> None:
    """The commands and deliveries spread evenly over ``seconds``, a few in flight at once."""
    bodies = [d.payload() for d in pipeline_story("ml/fraud", PIPELINE)]
    jobs = [("c", n) for n in range(commands)] + [("w", n) for n in range(webhooks)]
    jobs.sort(key=lambda job: job[1] / (commands if job[0] == "c" else webhooks))
    gap = seconds / max(1, len(jobs))
    running: set[asyncio.Task[None]] = set()
    for kind, n in jobs:
        work = load.command(n) if kind == "c" else load.webhook(n, bodies[n % len(bodies)])
        task = asyncio.create_task(work)
        running.add(task)
        task.add_done_callback(running.discard)
        await asyncio.sleep(gap)
    await asyncio.gather(*running)


async def restart_each(cluster: Cluster, load: Load) -> None:
    for replica in cluster.replicas:
        load.rotation.remove(replica)
        await asyncio.sleep(DRAIN_SECONDS)
        await replica.process.stop()
        await replica.process.start()
        load.rotation.append(replica)


async def rolling_restart(
    cluster: Cluster, store_url: str, commands: int, webhooks: int
) -> Restarted:
    """Restart every replica in turn while ``commands`` and ``webhooks`` are sent; then wait
    for the store to settle and count what went wrong."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        world = cluster.world
        ids = itertools.count(1)  # one numbering: ids name the replies and trigger_ids
        sides = {
            r.name: SlackSide(world.stand_ins.slack, world.catcher, r.url, session, ids=ids)
            for r in cluster.replicas
        }
        load = Load(list(cluster.replicas), sides, session)
        restart = asyncio.create_task(restart_each(cluster, load))
        started = time.monotonic()
        await send_all(load, commands, webhooks, seconds=4.0 * len(cluster.replicas))
        await restart
        seconds = time.monotonic() - started
        unprocessed = await settled(store_url, load)
    replies = [load.replies(sent) for sent in load.commands]
    return Restarted(
        seconds=seconds,
        commands=len(load.commands),
        command_acks_failed=sum(not sent.acked for sent in load.commands),
        commands_never_answered=sum(n == 0 for n in replies),
        commands_answered_twice=sum(n > 1 for n in replies),
        webhooks=len(load.hooks),
        webhook_acks_failed=sum(not acked for acked in load.hooks.values()),
        webhooks_not_processed=unprocessed,
        duplicate_cards=cards_per_key(world.stand_ins.slack),
    )


async def settled(store_url: str, load: Load) -> int:
    """Wait until nothing is pending and every acked command is answered; how many acked
    deliveries the store does not hold as processed (or ignored) by then."""
    reader = StoreReader(store_url)
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            view = await reader.view()
            answered = all(load.replies(s) for s in load.commands if s.acked)
            if not view.pending_interactions and not view.pending_deliveries and answered:
                break
            await asyncio.sleep(0.5)
        acked = [key for key, ok in load.hooks.items() if ok]
        return len(acked) - await _done(reader, acked)
    finally:
        await reader.close()


async def _done(reader: StoreReader, keys: list[str]) -> int:
    query = sa.text(
        "SELECT count(*) FROM inbox WHERE status IN ('processed', 'ignored') AND key = ANY(:keys)"
    )
    async with reader.engine.connect() as conn:
        return int((await conn.execute(query, {"keys": keys})).scalar_one())
