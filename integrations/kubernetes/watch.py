"""One watch per namespace: Jobs and their Pods, merged into JobUpdates without losing a transition.

Why Pods too: a Job object does not change when its pod cannot be scheduled or starts running,
so the scheduler's reason and the pending -> running step are only visible on the Pod. Both
resources are followed with the same label selector (pods carry the job template's labels).

Each resource runs LIST -> WATCH from the list's resourceVersion -> re-WATCH from the last seen
resourceVersion whenever the stream ends or the connection drops -> re-LIST on 410 Gone. Every
(re-)LIST of Jobs yields the current state of every job again, and a ``deleted`` update for any
job that vanished meanwhile; between LISTs only changed states are yielded.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from kubernetes.aio.client import ApiException
from kubernetes.aio.watch import Watch

from bot.errors import ExternalError
from bot.ports import JobUpdate
from integrations.kubernetes.manifests import (
    JOB_NAME_LABEL,
    describe,
    is_transient,
    job_update,
    newest_pod,
)

log = structlog.get_logger(__name__)

SYNC = "SYNC"  # a full LIST: the event's object is the list of items
ListFn = Callable[..., Any]
"""A namespaced list call of the aio client, e.g. ``BatchV1Api.list_namespaced_job``."""


@dataclass(frozen=True)
class WatchTiming:
    request_timeout: float = 10.0
    watch_seconds: int = 300  # the server ends each watch after this; we re-watch at once
    max_backoff: float = 30.0


async def resource_events(
    list_fn: ListFn,
    namespace: str,
    selector: str,
    timing: WatchTiming,
    resource_version: str | None = None,
) -> AsyncGenerator[tuple[str, Any], None]:
    """Yield (SYNC, items) after each LIST and (ADDED|MODIFIED|DELETED, object) per event."""
    rv, failures = resource_version, 0
    while True:
        try:
            if rv is None:
                listing = await list_fn(
                    namespace, label_selector=selector, _request_timeout=timing.request_timeout
                )
                rv = listing.metadata.resource_version
                yield SYNC, listing.items
            started = time.monotonic()
            async with aclosing(_watch(list_fn, namespace, selector, rv, timing)) as events:
                async for kind, obj, latest in events:
                    rv, failures = latest, 0
                    if obj is not None:
                        yield kind, obj
            if time.monotonic() - started < 1.0:  # ended at once: do not spin
                await asyncio.sleep(0.5)
        except ApiException as err:
            if err.status == 410:  # our resourceVersion was compacted away: start over
                log.info("kube_watch.gone", namespace=namespace, resource_version=rv)
                rv = None
                continue
            if not is_transient(err):
                raise ExternalError(f"Kubernetes watch in {namespace}: {describe(err)}") from err
            failures = await _back_off(namespace, err, failures, timing)
        except (aiohttp.ClientError, TimeoutError) as err:
            failures = await _back_off(namespace, err, failures, timing)


async def _watch(
    list_fn: ListFn, namespace: str, selector: str, rv: str, timing: WatchTiming
) -> AsyncGenerator[tuple[str, Any, str], None]:
    """One WATCH request from ``rv``: (type, object or None for bookmarks, latest rv)."""
    watch = Watch()  # type: ignore[no-untyped-call]
    try:
        stream = watch.stream(  # type: ignore[no-untyped-call]
            list_fn,
            namespace,
            label_selector=selector,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=timing.watch_seconds,
            _request_timeout=float(timing.watch_seconds) + timing.request_timeout,
        )
        async for event in stream:
            kind = str(event["type"])
            obj = None if kind == "BOOKMARK" else event["object"]
            yield kind, obj, str(watch.resource_version)
    finally:
        await watch.close()  # type: ignore[no-untyped-call]


async def _back_off(namespace: str, err: BaseException, failures: int, timing: WatchTiming) -> int:
    failures += 1
    delay = min(timing.max_backoff, 0.5 * 2 ** min(failures, 10)) * (0.5 + random.random() / 2)  # noqa: S311
    log.warning("kube_watch.retry", namespace=namespace, error=describe(err), delay=delay)
    await asyncio.sleep(delay)
    return failures


@dataclass
class JobBook:
    """The latest Jobs and Pods of one namespace, and the update last yielded per job."""

    jobs: dict[str, Any] = field(default_factory=dict)
    pods: dict[str, Any] = field(default_factory=dict)
    sent: dict[str, JobUpdate] = field(default_factory=dict)
    synced: set[str] = field(default_factory=set)
    held: list[JobUpdate] = field(default_factory=list)

    def apply(self, resource: str, kind: str, obj: Any) -> list[JobUpdate]:
        """Fold one event of ``resource`` ("job" or "pod") in; return the updates to yield."""
        was_ready = self.ready
        updates = self._job_event(kind, obj) if resource == "job" else self._pod_event(kind, obj)
        if was_ready:
            return updates
        # Until both first LISTs are in (so pending jobs have their pods' reasons), hold back
        # all but deletions; then report every job once.
        self.held += [update for update in updates if update.deleted]
        if not self.ready:
            return []
        held, self.held = self.held, []
        return held + self._all(force=True)

    @property
    def ready(self) -> bool:
        return {"job", "pod"} <= self.synced

    def _job_event(self, kind: str, obj: Any) -> list[JobUpdate]:
        if kind == SYNC:
            self.synced.add("job")
            fresh = {job.metadata.name: job for job in obj}
            gone = [self._deleted(job) for name, job in self.jobs.items() if name not in fresh]
            self.jobs = fresh
            return gone + self._all(force=True)
        name = obj.metadata.name
        if kind == "DELETED":
            self.jobs.pop(name, None)
            return [self._deleted(obj)]
        self.jobs[name] = obj
        return self._changed(name)

    def _pod_event(self, kind: str, obj: Any) -> list[JobUpdate]:
        if kind == SYNC:
            self.synced.add("pod")
            self.pods = {pod.metadata.name: pod for pod in obj}
            return self._all(force=False)
        if kind == "DELETED":
            self.pods.pop(obj.metadata.name, None)
        else:
            self.pods[obj.metadata.name] = obj
        return self._changed((obj.metadata.labels or {}).get(JOB_NAME_LABEL, ""))

    def _all(self, *, force: bool) -> list[JobUpdate]:
        return [u for name in sorted(self.jobs) for u in self._changed(name, force=force)]

    def _changed(self, name: str, *, force: bool = False) -> list[JobUpdate]:
        job = self.jobs.get(name)
        if job is None:
            return []
        update = job_update(job, newest_pod(self._pods_of(name)))
        if not force and self.sent.get(name) == update:
            return []
        self.sent[name] = update
        return [update]

    def _deleted(self, job: Any) -> JobUpdate:
        name = job.metadata.name
        self.sent.pop(name, None)
        return job_update(job, newest_pod(self._pods_of(name)), deleted=True)

    def _pods_of(self, job_name: str) -> Iterable[Any]:
        return (
            pod
            for pod in self.pods.values()
            if (pod.metadata.labels or {}).get(JOB_NAME_LABEL) == job_name
        )


async def job_updates(
    sources: dict[str, ListFn], namespace: str, selector: str, timing: WatchTiming
) -> AsyncGenerator[JobUpdate, None]:
    """Merge the "job" and "pod" event streams of ``sources`` into JobUpdates, until cancelled."""
    queue: asyncio.Queue[tuple[str, str, Any] | BaseException] = asyncio.Queue(maxsize=256)
    tasks = [
        asyncio.create_task(_pump(queue, resource, fn, namespace, selector, timing))
        for resource, fn in sources.items()
    ]
    book = JobBook()
    try:
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            for update in book.apply(*item):
                yield update
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _pump(
    queue: asyncio.Queue[tuple[str, str, Any] | BaseException],
    resource: str,
    fn: ListFn,
    namespace: str,
    selector: str,
    timing: WatchTiming,
) -> None:
    try:
        async with aclosing(resource_events(fn, namespace, selector, timing)) as events:
            async for kind, obj in events:
                await queue.put((resource, kind, obj))
    except Exception as err:  # handed to the consumer, which raises it
        await queue.put(err)
