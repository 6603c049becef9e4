"""Several bot processes on one PostgreSQL store, against the crash harness's stand-ins.

Each replica is `python -m bot serve` on the same config file and its own port (the crash
harness's BotProcess); the leader is read back from the store's ``leases`` row, whose holder
names the process (``host-pid-random``), as the ``runner`` of a deploy does.

Every replica's ecspresso is a wrapper around the logged stand-in that sleeps before a deploy
while ``slow_deploys`` says so (ECS is untouched meanwhile), to keep a deploy running while
the test kills other replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
import yaml

from bot.sandbox.aws import MotoServer
from bot.sandbox.crashes.process import BotProcess, kill_all, processes_with
from bot.sandbox.crashes.world import World, build_world, free_port, logged_ecspresso
from bot.store import Store
from bot.store.engine import build_engine, normalize_url


@dataclass
class Replica:
    name: str
    process: BotProcess

    @property
    def url(self) -> str:
        return self.process.url


@dataclass(frozen=True)
class Leadership:
    holder: str
    term: int
    expires_at: datetime

    @property
    def pid(self) -> int:
        return pid_of(self.holder)


def pid_of(holder: str) -> int:
    """The process a leader or runner lease names (``host-pid-random``)."""
    return int(holder.rsplit("-", 2)[1])


@dataclass(frozen=True)
class DeployRow:
    state: str
    step: str | None
    attempt: int
    pgid: int | None
    runner: str | None


class Cluster:
    """``count`` replicas sharing one world (Slack, GitLab, moto, ecspresso) and one store."""

    def __init__(self, world: World, replicas: list[Replica], store_url: str) -> None:
        self.world = world
        self.replicas = replicas
        self.engine = build_engine(normalize_url(store_url), timeout=10)
        self.marker = f"MLOPS_ECSPRESSO_STANDIN_CONTROL={world.control}"

    @classmethod
    async def build(
        cls,
        directory: Path,
        aws: MotoServer,
        store_url: str,
        *,
        count: int = 3,
        lease: float = 3.0,
        renew: float = 0.5,
        claim: float = 3.0,
    ) -> Cluster:
        store = Store.from_url(store_url)
        try:
            await store.migrate()
        finally:
            await store.close()
        world = await build_world(directory, aws, store_url)
        _set_timing(world.config, lease=lease, renew=renew, claim=claim)
        _wrap_ecspresso(world.config, directory / SLOW_FILE)
        replicas = []
        for n in range(count):
            port = free_port()
            env = world.bot_env() | {"MLOPS_BOT_PORT": str(port)}
            log = directory / f"replica-{n}.log"
            process = BotProcess(world.config, f"http://127.0.0.1:{port}", env, log)
            replicas.append(Replica(f"replica-{n}", process))
        return cls(world, replicas, store_url)

    def by_pid(self, pid: int) -> Replica | None:
        return next((r for r in self.replicas if r.process.alive and r.process.pid == pid), None)

    async def leadership(self) -> Leadership | None:
        query = sa.text("SELECT holder, term, expires_at FROM leases WHERE name = 'leader'")
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        expires = row.expires_at
        expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
        return Leadership(str(row.holder), int(row.term), expires)

    async def leader(self, *, after_term: int = 0, timeout: float = 30.0) -> tuple[Replica, int]:
        """The live replica holding a term above ``after_term`` (waiting for one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            held = await self.leadership()
            if held is not None and held.term > after_term:
                replica = self.by_pid(held.pid)
                if replica is not None:
                    return replica, held.term
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no live replica took a term above {after_term} in {timeout:g} s")

    def slow_deploys(self, seconds: float | None) -> None:
        """Every ``ecspresso deploy`` started from now sleeps ``seconds`` first (None: not)."""
        slow = self.world.directory / SLOW_FILE
        if seconds is None:
            slow.unlink(missing_ok=True)
        else:
            slow.write_text(f"{seconds:g}\n", encoding="utf-8")

    async def deploy(self, deploy_id: int) -> DeployRow:
        query = sa.text(
            "SELECT state, step, attempt, ecspresso_pgid, runner FROM deployments WHERE id = :id"
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query, {"id": deploy_id})).one()
        return DeployRow(str(row[0]), row[1], int(row[2]), row[3], row[4])

    async def running_deploy(self, timeout: float = 40.0) -> tuple[int, DeployRow]:
        """The first deploy whose ecspresso deploy has started (its process group recorded)."""
        query = sa.text("SELECT id FROM deployments WHERE ecspresso_pgid IS NOT NULL")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with self.engine.connect() as conn:
                found = (await conn.execute(query)).first()
            if found is not None:
                row = await self.deploy(int(found[0]))
                if row.step == "ecspresso":
                    return int(found[0]), row
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no ecspresso deploy started in {timeout:g} s")

    async def taken_over(self, deploy_id: int, attempt: int, timeout: float = 120.0) -> DeployRow:
        """The deploy once a live replica has taken it after ``attempt`` (adopted it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = await self.deploy(deploy_id)
            if row.attempt > attempt and row.runner and self.by_pid(pid_of(row.runner)):
                return row
            await asyncio.sleep(0.05)
        raise TimeoutError(f"nobody took deploy {deploy_id} over in {timeout:g} s")

    async def stop(self) -> None:
        for replica in self.replicas:
            await replica.process.stop()
        kill_all(processes_with(self.marker))
        await self.world.stop()
        await self.engine.dispose()


SLOW_FILE = "ecspresso-deploy-sleep"
WRAPPER = """#!/bin/sh
if [ "$1" = deploy ] && [ -f {slow} ]; then sleep "$(cat {slow})"; fi
exec {logged} "$@"
"""


def _wrap_ecspresso(config: Path, slow: Path) -> None:
    wrapper = config.parent / "ecspresso-wrapped"
    text = WRAPPER.format(slow=shlex.quote(str(slow)), logged=shlex.quote(logged_ecspresso()))
    wrapper.write_text(text, encoding="utf-8")
    wrapper.chmod(0o755)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["ecspresso"]["path"] = str(wrapper)
    config.write_text(yaml.safe_dump(data), encoding="utf-8")


def _set_timing(config: Path, *, lease: float, renew: float, claim: float) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["store"] |= {
        "leader_lease_seconds": lease,
        "leader_renew_seconds": renew,
        "claim_lease_seconds": claim,
    }
    config.write_text(yaml.safe_dump(data), encoding="utf-8")


@contextlib.asynccontextmanager
async def running_cluster(
    directory: Path,
    aws: MotoServer,
    store_url: str,
    *,
    count: int = 3,
    lease: float = 3.0,
    renew: float = 0.5,
    claim: float = 3.0,
) -> AsyncIterator[Cluster]:
    cluster = await Cluster.build(
        directory, aws, store_url, count=count, lease=lease, renew=renew, claim=claim
    )
    try:
        yield cluster
    finally:
        await cluster.stop()
