"""Following active runs: ONE polling loop for every GitLab project, ONE watch per K8s namespace.

Both start from what the store says is active, so a restarted bot picks every run up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from bot.clock import Clock, utcnow
from bot.domain.runs import Run
from bot.ports import Cluster, Pipelines, PipelineStatus
from bot.services.training.progress import RunProgress
from bot.store import Store

log = structlog.get_logger(__name__)
LABEL_SELECTOR = "app.kubernetes.io/managed-by=mlops-bot"
CLOCK_SKEW = timedelta(minutes=10)
"""How far GitLab's clock may be behind the bot's (the first list of a project)."""
READ_PAGE = 200
"""Active runs read from the store per query."""
OVERLAP = timedelta(seconds=5)
"""Each list reaches this far back before the newest update seen: an update GitLab commits
late (stamped earlier than one already listed) is still seen."""


@dataclass(frozen=True)
class Seen:
    """What the poller last saw of a run's pipeline."""

    updated_at: datetime | None
    status: str
    signature: tuple[str, tuple[str, ...]]


class PipelinePoller:
    """Follows every active GitLab run, per project: each round lists the project's pipelines
    updated since the last round (one request per 100), then reads the jobs only of the runs'
    pipelines that changed, a bounded chunk at a time. The wait doubles while nothing moves."""

    def __init__(
        self,
        store: Store,
        pipelines: Pipelines,
        progress: RunProgress,
        *,
        every: float,
        max_every: float,
        concurrency: int = 8,
        chunk: int = 32,
        list_limit: int = 1000,
        overlap: timedelta = OVERLAP,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.pipelines = pipelines
        self.progress = progress
        self.every = every
        self.max_every = max_every
        self.gate = asyncio.Semaphore(concurrency)
        self.chunk = chunk
        self.list_limit = list_limit
        self.overlap = overlap
        self.clock = clock
        self.seen: dict[int, Seen] = {}
        self.cursors: dict[str, datetime] = {}
        """Per project: list pipelines updated after this (GitLab's clock) next round."""
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
        """One round over every project with active runs; True when any run moved."""
        followed: dict[str, dict[int, Run]] = {}
        active: set[int] = set()
        async for run in self.active_runs():
            if run.pipeline_id is not None and run.project:
                followed.setdefault(run.project, {})[run.pipeline_id] = run
                active.add(run.id)
        self.seen = {k: v for k, v in self.seen.items() if k in active}
        changed = False
        for project, runs in followed.items():
            changed |= await self.poll_project(project, runs)
            await asyncio.sleep(0)
        return changed

    async def active_runs(self) -> AsyncIterator[Run]:
        """Every active GitLab run, read ``READ_PAGE`` rows at a time (a short hold of the
        loop each), in id order."""
        after = 0
        while True:
            page = await self.store.runs.active("gitlab", after=after, limit=READ_PAGE)
            for run in page:
                yield run
            if len(page) < READ_PAGE:
                return
            after = page[-1].id

    async def poll_project(self, project: str, runs: dict[int, Run]) -> bool:
        """List what changed in ``project``, then read the jobs of the runs that did."""
        try:
            listed = await self.listed(project)
        except Exception as exc:
            log.warning("pipeline_list_failed", project=project, error=str(exc))
            return False
        due: list[tuple[Run, PipelineStatus | None]] = [
            (runs[status.id], status)
            for status in listed
            if status.id in runs and self.moved(runs[status.id], status)
        ]
        named = {status.id for status in listed}
        due += [(r, None) for pid, r in runs.items() if r.id not in self.seen and pid not in named]
        changed = False
        for start in range(0, len(due), self.chunk):
            changed |= await self.refresh(project, due[start : start + self.chunk])
            await asyncio.sleep(0)
        return changed

    async def listed(self, project: str) -> list[PipelineStatus]:
        """Pipelines updated after the project's cursor, which then moves to the newest
        update seen (less an overlap for updates committed late). The first round starts
        from the bot's clock less the skew GitLab's clock may have."""
        after = self.cursors.get(project) or self.clock() - CLOCK_SKEW
        self.cursors.setdefault(project, after)
        listed = await self.pipelines.updated(project, after, self.list_limit)
        stamps = [s.updated_at for s in listed if s.updated_at is not None]
        if stamps:
            full = len(listed) >= self.list_limit  # more to come: resume exactly there
            newest = max(stamps) if full else max(stamps) - self.overlap
            self.cursors[project] = max(after, newest)
        return listed

    def moved(self, run: Run, status: PipelineStatus) -> bool:
        seen = self.seen.get(run.id)
        return seen is None or (seen.updated_at, seen.status) != (status.updated_at, status.status)

    async def refresh(self, project: str, due: list[tuple[Run, PipelineStatus | None]]) -> bool:
        """Read the jobs of one chunk of changed pipelines (a whole pipeline when it was not
        listed), then hand the ones whose state moved to the runs, one after the other."""
        read = await asyncio.gather(*(self.read(project, run, listed) for run, listed in due))
        changed = False
        for (run, _), status in zip(due, read, strict=True):
            if status is None:
                continue
            signature = fingerprint(status)
            before = self.seen.get(run.id)
            self.seen[run.id] = Seen(status.updated_at, status.status, signature)
            if before is not None and before.signature == signature:
                continue
            changed = True
            await self.progress.pipeline_changed(project, status)
        return changed

    async def read(
        self, project: str, run: Run, listed: PipelineStatus | None
    ) -> PipelineStatus | None:
        assert run.pipeline_id is not None
        async with self.gate:
            try:
                if listed is None:
                    return await self.pipelines.status(project, run.pipeline_id)
                jobs = await self.pipelines.jobs(project, run.pipeline_id)
            except Exception as exc:
                log.warning("pipeline_poll_failed", run=run.id, error=str(exc))
                return None
        return replace(listed, jobs=jobs)


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
