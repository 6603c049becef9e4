"""Many trials at once: one moto server, each trial in an AWS region of its own (moto keeps one
state per region; it is reset once every region has been used), a few trials at a time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bot.sandbox.aws import MotoServer, running_moto
from bot.sandbox.crashes.trial import Outcome, Trial, run_trial
from bot.sandbox.fixtures.deploys import Scheduler
from bot.sandbox.stand_ins import SANDBOX_AWS
from integrations.aws.sessions import new_session

CONCURRENCY_ENV = "MLOPS_CRASH_CONCURRENCY"
DEFAULT_CONCURRENCY = 4

StoreFor = Callable[[Trial], AbstractAsyncContextManager[str]]
"""A fresh, empty store for one trial: yields its URL, drops it afterwards."""


def concurrency() -> int:
    return max(1, int(os.environ.get(CONCURRENCY_ENV, "") or DEFAULT_CONCURRENCY))


def regions() -> list[str]:
    return sorted(new_session().get_available_regions("ecs"))


async def run_trials(
    trials: Sequence[Trial],
    store_for: StoreFor,
    directory: Path,
    *,
    parallel: int | None = None,
    on_outcome: Callable[[Outcome], Awaitable[None] | None] | None = None,
) -> dict[str, Outcome]:
    """Every trial's outcome, by trial name; ``parallel`` trials run at a time."""
    for name, value in SANDBOX_AWS.items():
        os.environ.setdefault(name, value)
    outcomes: dict[str, Outcome] = {}
    pool = regions()
    gate = asyncio.Semaphore(parallel or concurrency())
    with running_moto(ecs_running=1) as moto:
        for start in range(0, len(trials), len(pool)):
            moto.reset()  # moto's state is per process: also what an earlier suite left
            batch = trials[start : start + len(pool)]

            async def one(trial: Trial, region: str) -> None:
                async with gate:
                    aws = MotoServer(moto.endpoint_url, region=region)
                    outcome = await _isolated(trial, aws, store_for, directory / trial.name)
                outcomes[trial.name] = outcome
                if on_outcome is not None and (shown := on_outcome(outcome)) is not None:
                    await shown

            await asyncio.gather(*(one(t, r) for t, r in zip(batch, pool, strict=False)))
    return outcomes


async def _isolated(trial: Trial, aws: MotoServer, store_for: StoreFor, directory: Path) -> Outcome:
    """One trial with ECS's scheduler played in its region; a harness error is an outcome."""
    scheduler = Scheduler(aws.client("ecs")).start()
    try:
        async with store_for(trial) as url:
            return await run_trial(trial, aws, url, directory)
    except Exception as exc:  # the harness itself failed: say so instead of losing the rest
        return Outcome(trial, error=f"the harness failed: {type(exc).__name__}: {exc}")
    finally:
        await asyncio.to_thread(scheduler.stop)


def postgres_stores(admin_url: str) -> StoreFor:
    """A new database per trial on the server at ``admin_url``, dropped afterwards."""

    @contextlib.asynccontextmanager
    async def store(trial: Trial) -> AsyncIterator[str]:
        name = f"crash_{uuid.uuid4().hex[:12]}"
        await _admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE template0')
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return store


async def _admin(admin_url: str, statement: str) -> None:
    conn = await asyncpg.connect(
        make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False),
        timeout=10,
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def sqlite_stores(directory: Path) -> StoreFor:
    """A new SQLite file per trial, under ``directory``."""

    @contextlib.asynccontextmanager
    async def store(trial: Trial) -> AsyncIterator[str]:
        yield f"sqlite:///{directory / trial.name / 'store' / 'bot.db'}"

    return store
