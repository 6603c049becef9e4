"""Following active runs: ONE polling loop for every GitLab run, ONE watch per K8s namespace.

Both start from what the store says is active, so a restarted bot picks every run up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable

import structlog

from bot.domain.runs import Run
from bot.ports import Cluster, Pipelines, PipelineStatus
from bot.services.training.progress import RunProgress
from bot.store import Store

log = structlog.get_logger(__name__)
LABEL_SELECTOR = "app.kubernetes.io/managed-by=mlops-bot"


class PipelinePoller:
    """Polls every active GitLab run in one loop; the interval doubles while nothing changes."""

    def __init__(
        self,
        store: Store,
        pipelines: Pipelines,
        progress: RunProgress,
        *,
        every: float,
        max_every: float,
        concurrency: int = 8,
    ) -> None:
        self.store = store
        self.pipelines = pipelines
        self.progress = progress
        self.every = every
        self.max_every = max_every
        self.gate = asyncio.Semaphore(concurrency)
        self.seen: dict[int, tuple[str, tuple[str, ...]]] = {}
        self.woken = asyncio.Event()

    def nudge(self) -> None:
        """Look again now (a run just started)."""
        self.woken.set()

    async def run(self) -> None:
        interval = self.every
        while True:
            changed = await self.poll_once()
            interval = self.every if changed else min(interval * 2, self.max_every)
            self.woken.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self.woken.wait()

    async def poll_once(self) -> bool:
        """One round over every active run; True when any of them moved."""
        runs = [r for r in await self.store.runs.active("gitlab") if r.pipeline_id is not None]
        active = {r.id for r in runs}  # once per round: the cleanup stays linear in the runs
        self.seen = {k: v for k, v in self.seen.items() if k in active}
        results = await asyncio.gather(*(self.poll(run) for run in runs))
        return any(results)

    async def poll(self, run: Run) -> bool:
        assert run.project is not None and run.pipeline_id is not None
        async with self.gate:
            try:
                status = await self.pipelines.status(run.project, run.pipeline_id)
            except Exception as exc:
                log.warning("pipeline_poll_failed", run=run.id, error=str(exc))
                return False
        signature = fingerprint(status)
        if self.seen.get(run.id) == signature:
            return False
        self.seen[run.id] = signature
        await self.progress.pipeline_changed(run.project, status)
        return True


def fingerprint(status: PipelineStatus) -> tuple[str, tuple[str, ...]]:
    return status.status, tuple(f"{j.id}:{j.status}" for j in status.jobs)


class JobWatchers:
    """One watch per namespace over the bot's Jobs, feeding every update to the runs."""

    def __init__(self, cluster: Cluster, progress: RunProgress, namespaces: list[str]) -> None:
        self.cluster = cluster
        self.progress = progress
        self.namespaces = namespaces

    def loops(self) -> list[Callable[[], Awaitable[None]]]:
        return [functools.partial(self.watch, ns) for ns in self.namespaces]

    async def watch(self, namespace: str) -> None:
        async for update in self.cluster.watch_jobs(namespace, LABEL_SELECTOR):
            try:
                await self.progress.job_changed(update)
            except Exception:
                log.exception("job_update_failed", job=update.name, namespace=namespace)


class Supervisor:
    """Runs background loops for the bot's lifetime; a loop that dies is restarted with backoff."""

    def __init__(self, *, first_backoff: float = 1.0, max_backoff: float = 60.0) -> None:
        self.tasks: list[asyncio.Task[None]] = []
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff

    def start(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        self.tasks.append(asyncio.create_task(self.keep(name, loop), name=name))

    async def keep(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        backoff = self.first_backoff
        while True:
            try:
                await loop()
                backoff = self.first_backoff
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background_loop_failed", loop=name, retry_in=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
