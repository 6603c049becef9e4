"""Kubernetes GPU training Jobs through the official asyncio client (``kubernetes.aio``).

Every call carries a timeout and is retried (bounded, tenacity) on 429, 5xx, dropped
connections and timeouts. The API server's 400/422 become UserInputError quoting its message,
409 becomes Conflict, anything else ExternalError; no message carries a token or headers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pydantic
import yaml
from kubernetes.aio.client import ApiClient, ApiException, BatchV1Api, Configuration, CoreV1Api
from kubernetes.aio.config import load_incluster_config, new_client_from_config
from kubernetes.aio.config.config_exception import ConfigException
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bot.errors import BotError, ConfigError, Conflict, ExternalError, UserInputError
from bot.ports import JobSpec, JobUpdate, NodeGpus, PendingGpuJob
from integrations.kubernetes import manifests as kube_jobs
from integrations.kubernetes import status as kube_status
from integrations.kubernetes import templates
from integrations.kubernetes.manifests import JOB_NAME_LABEL, api_message, describe, is_transient
from integrations.kubernetes.watch import JOB_REFUSALS, Source, WatchTiming, job_updates

T = TypeVar("T")

_FAILURES = (ApiException, aiohttp.ClientError, TimeoutError)


class KubernetesCluster:
    """bot.ports.Cluster over one API server; owns ``api`` and closes it in ``close``."""

    def __init__(
        self,
        api: ApiClient,
        *,
        request_timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 0.2,
        watch_seconds: int = 300,
        resync_seconds: float = 30.0,
    ) -> None:
        self._api = api
        self._batch = BatchV1Api(api)
        self._core = CoreV1Api(api)
        self._timeout = float(request_timeout)
        self._attempts = attempts
        self._backoff = backoff
        self._timing = WatchTiming(
            request_timeout=self._timeout,
            watch_seconds=watch_seconds,
            resync_seconds=resync_seconds,
        )

    @classmethod
    async def from_kubeconfig(cls, path: str | Path | None, **options: Any) -> KubernetesCluster:
        return cls(await api_client(path), **options)

    async def close(self) -> None:
        await self._api.close()  # type: ignore[no-untyped-call]

    # ---- jobs ---------------------------------------------------------------------------------

    async def create_job(self, spec: JobSpec) -> None:
        what = f"create job {spec.namespace}/{spec.name}"
        try:
            template = (
                await asyncio.to_thread(templates.load, spec.template) if spec.template else None
            )
            body = kube_jobs.to_job(spec, template)
        except templates.TemplateError as err:
            raise UserInputError(f"the Job template cannot be used: {err}") from err
        except pydantic.ValidationError as err:
            raise UserInputError(
                f"invalid job {spec.name}: {err.error_count()} bad field(s)"
            ) from err
        try:
            await self._call(what, self._batch.create_namespaced_job, spec.namespace, body)
        except ApiException as err:
            if err.status == 409 and await self._same_job_exists(spec):
                return  # an earlier attempt of ours went through before its answer was lost
            raise _rejected(what, err) from err

    async def _same_job_exists(self, spec: JobSpec) -> bool:
        job = await self._read_job(spec.namespace, spec.name)
        return job is not None and dict(job.metadata.labels or {}) == dict(spec.labels)

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete the job and (foreground propagation) its pods; an absent job is fine."""
        what = f"delete job {namespace}/{name}"
        try:
            await self._call(
                what,
                self._batch.delete_namespaced_job,
                name,
                namespace,
                propagation_policy="Foreground",
            )
        except ApiException as err:
            if err.status != 404:
                raise _rejected(what, err) from err

    async def find_job(self, namespace: str, label_selector: str) -> str | None:
        """The oldest Job matching ``label_selector``, by name; None when there is none."""
        jobs = await self._list(
            f"list jobs in {namespace}",
            self._batch.list_namespaced_job,
            namespace,
            label_selector=label_selector,
        )
        oldest = min(jobs, key=kube_status.created, default=None)
        return str(oldest.metadata.name) if oldest is not None else None

    async def job_update(self, namespace: str, name: str) -> JobUpdate | None:
        job = await self._read_job(namespace, name)
        if job is None:
            return None
        pod = kube_status.newest_pod(await self._job_pods(namespace, name))
        refusal = await self._refusal(job)
        return kube_status.job_update(job, pod, refusal=refusal)

    async def _refusal(self, job: Any) -> kube_status.Refusal | None:
        """The job controller's latest refused pod create for ``job``; None when there is
        none or events may not be read."""
        meta = job.metadata
        try:
            events = await self._list(
                f"list events of job {meta.namespace}/{meta.name}",
                self._core.list_namespaced_event,
                meta.namespace,
                field_selector=f"{JOB_REFUSALS},involvedObject.uid={meta.uid}",
            )
        except ExternalError:
            return None
        latest = max(events, key=kube_status.event_time, default=None)
        return kube_status.refusal(latest) if latest is not None else None

    def watch_jobs(self, namespace: str, label_selector: str) -> AsyncGenerator[JobUpdate, None]:
        """Updates of every matching job, starting with their current states, from one watch
        of the namespace's Jobs, Pods and FailedCreate events; see watch.py."""
        sources = {
            "job": Source(self._batch.list_namespaced_job, label_selector),
            "pod": Source(self._core.list_namespaced_pod, label_selector),
            "event": Source(
                self._core.list_namespaced_event, field_selector=JOB_REFUSALS, optional=True
            ),
        }
        return job_updates(sources, namespace, self._timing)

    async def pod_log_tail(self, namespace: str, job_name: str, lines: int = 30) -> str:
        """The newest pod's last ``lines`` lines; a placeholder when the log cannot be read."""
        pod = kube_status.newest_pod(await self._job_pods(namespace, job_name))
        if pod is None:
            return ""
        what = f"read log of {namespace}/{pod.metadata.name}"
        try:
            text = await self._call(
                what,
                self._core.read_namespaced_pod_log,
                pod.metadata.name,
                namespace,
                container=kube_jobs.CONTAINER,
                tail_lines=lines,
            )
        except (ApiException, ExternalError) as err:
            cause = err if isinstance(err, ApiException) else err.__cause__
            reason = api_message(cause) if isinstance(cause, ApiException) else str(err)
            return f"(no log available: {reason})"
        return str(text or "")

    # ---- GPU capacity ---------------------------------------------------------------------------

    async def gpu_nodes(self) -> list[NodeGpus]:
        """Nodes with GPUs: allocatable, and what non-terminated pods bound to them hold."""
        nodes = await self._list("list nodes", self._core.list_node)
        pods = await self._list(
            "list pods",
            self._core.list_pod_for_all_namespaces,
            field_selector="status.phase!=Succeeded,status.phase!=Failed",
        )
        held: dict[str, int] = {}
        for pod in pods:
            node = pod.spec.node_name
            if node:
                held[node] = held.get(node, 0) + kube_status.pod_gpus(pod)
        result = [
            NodeGpus(node.metadata.name, _allocatable_gpus(node), held.get(node.metadata.name, 0))
            for node in nodes
        ]
        return [n for n in result if n.allocatable > 0 or n.requested > 0]

    async def pending_gpu_jobs(self, namespace: str, label_selector: str) -> list[PendingGpuJob]:
        """Pods of matching jobs that wait for the scheduler while asking for GPUs."""
        pods = await self._list(
            f"list pods in {namespace}",
            self._core.list_namespaced_pod,
            namespace,
            label_selector=label_selector,
            field_selector="status.phase=Pending",
        )
        return [
            PendingGpuJob(
                namespace=namespace,
                name=(pod.metadata.labels or {}).get(JOB_NAME_LABEL, pod.metadata.name),
                gpus=kube_status.pod_gpus(pod),
                reason=kube_status.scheduling_reason(pod) or "waiting for the scheduler",
            )
            for pod in pods
            if kube_status.is_unscheduled_pending(pod) and kube_status.pod_gpus(pod) > 0
        ]

    # ---- plumbing -------------------------------------------------------------------------------

    async def _read_job(self, namespace: str, name: str) -> Any | None:
        what = f"read job {namespace}/{name}"
        try:
            return await self._call(what, self._batch.read_namespaced_job, name, namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise _rejected(what, err) from err

    async def _job_pods(self, namespace: str, job_name: str) -> list[Any]:
        return await self._list(
            f"list pods of job {namespace}/{job_name}",
            self._core.list_namespaced_pod,
            namespace,
            label_selector=f"{JOB_NAME_LABEL}={job_name}",
        )

    async def _list(
        self, what: str, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
    ) -> list[Any]:
        try:
            listing = await self._call(what, fn, *args, **kw)
        except ApiException as err:
            raise _rejected(what, err) from err
        return list(listing.items or [])

    async def _call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """``fn`` with a timeout and bounded retries; a 4xx ApiException is left to the caller."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(multiplier=self._backoff, max=2.0, jitter=self._backoff),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            return await retrying(fn, *args, _request_timeout=self._timeout, **kw)
        except _FAILURES as err:
            if isinstance(err, ApiException) and not is_transient(err):
                raise
            raise ExternalError(
                f"Kubernetes {what} failed after {self._attempts} attempts: {describe(err)}"
            ) from err


async def api_client(kubeconfig: str | Path | None) -> ApiClient:
    """An asyncio API client from a kubeconfig file, or from the pod's service account when
    ``kubeconfig`` is None (the bot running inside the cluster). A config that cannot be
    loaded is a ConfigError naming the setting, what is wrong and what would be right."""
    if kubeconfig is None:
        configuration = Configuration()
        try:
            load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException as err:
            raise ConfigError(
                [
                    "kubernetes.kubeconfig: not set and the bot is not running inside a cluster "
                    f"({err}); set kubernetes.kubeconfig (or KUBECONFIG) to a kubeconfig file"
                ]
            ) from None
        return ApiClient(configuration=configuration)
    path = Path(kubeconfig)
    if not await asyncio.to_thread(path.is_file):
        raise ConfigError(
            [f"kubernetes.kubeconfig: no file at {path}; point it (or KUBECONFIG) at a kubeconfig"]
        )
    try:
        client: ApiClient = await new_client_from_config(config_file=str(path))  # type: ignore[no-untyped-call]
    except (ConfigException, ValueError, OSError, yaml.YAMLError) as err:
        raise ConfigError(
            [f"kubernetes.kubeconfig: {path} cannot be used: {str(err).splitlines()[0][:200]}"]
        ) from None
    return client


def _rejected(what: str, err: ApiException) -> BotError:
    """The bot's error for a 4xx answer."""
    if err.status in (400, 422):
        return UserInputError(f"Kubernetes rejected {what}: {api_message(err)}")
    if err.status == 409:
        return Conflict(f"cannot {what}: {api_message(err)}")
    return ExternalError(f"Kubernetes {what} failed: {describe(err)}")


def _allocatable_gpus(node: Any) -> int:
    allocatable = (node.status.allocatable or {}) if node.status else {}
    return kube_status.quantity(allocatable.get(kube_status.GPU))
