"""One watch per namespace: Jobs, their Pods and the Jobs' FailedCreate events, merged into
JobUpdates without losing a transition.

Why Pods too: a Job object does not change when its pod cannot be scheduled, cannot pull its
image, crash-loops or starts running, so the scheduler's reason (``PodScheduled=False``), the
kubelet's (``containerStatuses[].state.waiting``) and the pending -> running step are only
visible on the Pod. Both are followed with the same label selector (pods carry the job
template's labels). Why events: when the API server refuses the job controller's pod (a full
ResourceQuota) there is no Pod at all, only a ``FailedCreate`` event on the Job. Events carry no
labels, so they are followed by field selector and matched to our Jobs by uid.

Each resource runs LIST -> WATCH from the list's resourceVersion -> re-WATCH from the last seen
resourceVersion whenever the stream ends or the connection drops -> re-LIST on 410 Gone. Every
(re-)LIST of Jobs yields the current state of every job again, and a ``deleted`` update for any
job that vanished meanwhile; between LISTs only changed states are yielded. Every
``resync_seconds`` the pending jobs are yielded again (an informer's resync, from memory, no
request), so that a deadline on pending is kept without polling the API server.
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
from integrations.kubernetes.manifests import JOB_NAME_LABEL, describe, is_transient
from integrations.kubernetes.status import (
    FAILED_CREATE,
    Refusal,
    event_time,
    job_update,
    newest_pod,
    refusal,
)

log = structlog.get_logger(__name__)

SYNC = "SYNC"  # a full LIST: the event's object is the list of items
JOB_REFUSALS = f"involvedObject.kind=Job,reason={FAILED_CREATE}"
"""The field selector of the job controller's events for pods the API server refused."""
ListFn = Callable[..., Any]
"""A namespaced list call of the aio client, e.g. ``BatchV1Api.list_namespaced_job``."""


@dataclass(frozen=True)
class WatchTiming:
    request_timeout: float = 10.0
    watch_seconds: int = 300  # the server ends each watch after this; we re-watch at once
    max_backoff: float = 30.0
    resync_seconds: float = 30.0  # pending jobs are yielded again this often


@dataclass(frozen=True)
class Source:
    """One resource of a namespace's watch: its list call and selectors. An ``optional``
    source that the API server forbids (RBAC without ``events``) is left out, not fatal."""

    list_fn: ListFn
    label_selector: str = ""
    field_selector: str = ""
    optional: bool = False

    def selectors(self) -> dict[str, str]:
        chosen = {"label_selector": self.label_selector, "field_selector": self.field_selector}
        return {key: value for key, value in chosen.items() if value}


async def resource_events(
    source: Source, namespace: str, timing: WatchTiming, resource_version: str | None = None
) -> AsyncGenerator[tuple[str, Any], None]:
    """Yield (SYNC, items) after each LIST and (ADDED|MODIFIED|DELETED, object) per event."""
    rv, failures = resource_version, 0
    while True:
        try:
            if rv is None:
                listing = await source.list_fn(
                    namespace, **source.selectors(), _request_timeout=timing.request_timeout
                )
                rv = listing.metadata.resource_version
                yield SYNC, listing.items
            started = time.monotonic()
            async with aclosing(_watch(source, namespace, rv, timing)) as events:
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
    source: Source, namespace: str, rv: str, timing: WatchTiming
) -> AsyncGenerator[tuple[str, Any, str], None]:
    """One WATCH request from ``rv``: (type, object or None for bookmarks, latest rv)."""
    watch = Watch()  # type: ignore[no-untyped-call]
    try:
        stream = watch.stream(  # type: ignore[no-untyped-call]
            source.list_fn,
            namespace,
            **source.selectors(),
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
    """The latest Jobs, Pods and pod-creation refusals of one namespace, and the update last
    yielded per job. ``expected``: the resources whose first LIST must be in before reporting."""

    expected: frozenset[str] = frozenset({"job", "pod"})
    jobs: dict[str, Any] = field(default_factory=dict)
    pods: dict[str, Any] = field(default_factory=dict)
    refusals: dict[str, Any] = field(default_factory=dict)  # job name -> latest FailedCreate
    sent: dict[str, JobUpdate] = field(default_factory=dict)
    synced: set[str] = field(default_factory=set)
    held: list[JobUpdate] = field(default_factory=list)

    def apply(self, resource: str, kind: str, obj: Any) -> list[JobUpdate]:
        """Fold one event of ``resource`` ("job", "pod" or "event") in; return the updates to
        yield."""
        was_ready = self.ready
        fold = {"job": self._job_event, "pod": self._pod_event, "event": self._refusal_event}
        updates = fold[resource](kind, obj)
        if was_ready:
            return updates
        # Until every first LIST is in (so pending jobs have their reasons), hold back all but
        # deletions; then report every job once.
        self.held += [update for update in updates if update.deleted]
        if not self.ready:
            return []
        held, self.held = self.held, []
        return held + self._all(force=True)

    @property
    def ready(self) -> bool:
        return self.expected <= self.synced

    def pending(self) -> list[JobUpdate]:
        """The update of every pending job that is not being deleted, again (the resync)."""
        if not self.ready:
            return []
        names = [n for n in sorted(self.jobs) if not self.jobs[n].metadata.deletion_timestamp]
        return [u for name in names if (u := self._now(name)).phase == "pending"]

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

    def _refusal_event(self, kind: str, obj: Any) -> list[JobUpdate]:
        if kind == SYNC:
            self.synced.add("event")
            self.refusals = {}
            for event in sorted(obj, key=event_time):
                self.refusals[event.involved_object.name] = event
            return self._all(force=False)
        name = obj.involved_object.name
        latest = self.refusals.get(name)
        if kind == "DELETED":  # expired (events live about an hour)
            if latest is not None and latest.metadata.name == obj.metadata.name:
                del self.refusals[name]
        elif latest is None or event_time(obj) >= event_time(latest):
            self.refusals[name] = obj
        return self._changed(name)

    def _all(self, *, force: bool) -> list[JobUpdate]:
        return [u for name in sorted(self.jobs) for u in self._changed(name, force=force)]

    def _changed(self, name: str, *, force: bool = False) -> list[JobUpdate]:
        if name not in self.jobs:
            return []
        update = self._now(name)
        if not force and self.sent.get(name) == update:
            return []
        self.sent[name] = update
        return [update]

    def _now(self, name: str) -> JobUpdate:
        job = self.jobs[name]
        return job_update(job, newest_pod(self._pods_of(name)), refusal=self._refusal_of(job))

    def _deleted(self, job: Any) -> JobUpdate:
        name = job.metadata.name
        self.sent.pop(name, None)
        pod = newest_pod(self._pods_of(name))
        return job_update(job, pod, deleted=True, refusal=self._refusal_of(job))

    def _refusal_of(self, job: Any) -> Refusal | None:
        event = self.refusals.get(job.metadata.name)
        if event is None or event.involved_object.uid != job.metadata.uid:
            return None  # none, or one about an earlier Job of the same name
        return refusal(event)

    def _pods_of(self, job_name: str) -> Iterable[Any]:
        return (
            pod
            for pod in self.pods.values()
            if (pod.metadata.labels or {}).get(JOB_NAME_LABEL) == job_name
        )


Item = tuple[str, str, Any] | BaseException


async def job_updates(
    sources: dict[str, Source], namespace: str, timing: WatchTiming
) -> AsyncGenerator[JobUpdate, None]:
    """Merge the event streams of ``sources`` ("job", "pod", "event") into JobUpdates, and yield
    the pending jobs again every ``timing.resync_seconds``, until cancelled."""
    queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=256)
    tasks = [
        asyncio.create_task(_pump(queue, resource, source, namespace, timing))
        for resource, source in sources.items()
    ]
    book = JobBook(expected=frozenset(sources))
    loop = asyncio.get_running_loop()
    resync_at = loop.time() + timing.resync_seconds
    try:
        while True:
            item = await _next(queue, resync_at - loop.time())
            if item is None:
                resync_at = loop.time() + timing.resync_seconds
                for update in book.pending():
                    yield update
                continue
            if isinstance(item, BaseException):
                raise item
            for update in book.apply(*item):
                yield update
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _next(queue: asyncio.Queue[Item], within: float) -> Item | None:
    """The next item, or None when ``within`` seconds pass first."""
    try:
        async with asyncio.timeout(max(0.0, within)):
            return await queue.get()
    except TimeoutError:
        return None


async def _pump(
    queue: asyncio.Queue[Item], resource: str, source: Source, namespace: str, timing: WatchTiming
) -> None:
    try:
        async with aclosing(resource_events(source, namespace, timing)) as events:
            async for kind, obj in events:
                await queue.put((resource, kind, obj))
    except ExternalError as err:
        if not (source.optional and _forbidden(err)):
            await queue.put(err)  # handed to the consumer, which raises it
            return
        log.warning("kube_watch.source_forbidden", namespace=namespace, resource=resource)
        await queue.put((resource, SYNC, []))  # followed without it
    except Exception as err:
        await queue.put(err)


def _forbidden(err: ExternalError) -> bool:
    cause = err.__cause__
    return isinstance(cause, ApiException) and cause.status == 403
