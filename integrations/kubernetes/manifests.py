"""Pure translation between the bot's job types and Kubernetes objects and errors (no I/O).

Objects are the models of ``kubernetes.aio.client`` (pydantic, snake_case attributes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes.aio.client import ApiException, V1Job

from bot.ports import JobSpec, JobUpdate

GPU = "nvidia.com/gpu"
JOB_NAME_LABEL = "job-name"  # set on every pod by the job controller
CONTAINER = "train"
_EPOCH = datetime.min.replace(tzinfo=UTC)


def job_manifest(spec: JobSpec) -> dict[str, Any]:
    """The batch/v1 Job for ``spec``, as the JSON the API server takes."""
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        "template": {"metadata": {"labels": dict(spec.labels)}, "spec": _pod_spec(spec)},
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": dict(spec.labels)},
        "spec": job_spec,
    }


def _pod_spec(spec: JobSpec) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "env": [{"name": key, "value": value} for key, value in spec.env.items()],
    }
    if spec.command:
        container["command"] = list(spec.command)
    if spec.args:
        container["args"] = list(spec.args)
    if spec.gpus > 0:
        container["resources"] = {"limits": {GPU: str(spec.gpus)}}
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = [dict(toleration) for toleration in spec.tolerations]
    if spec.service_account:
        pod["serviceAccountName"] = spec.service_account
    return pod


def to_job(spec: JobSpec) -> Any:
    """The manifest as the client's model (raises pydantic's ValidationError on bad types)."""
    return V1Job.from_dict(job_manifest(spec))


# ---- reading state ---------------------------------------------------------------------------


def newest_pod(pods: Iterable[Any]) -> Any | None:
    """The most recently created pod (the job controller's latest attempt)."""
    return max(pods, key=_created, default=None)


def _created(obj: Any) -> tuple[datetime, str]:
    meta = obj.metadata
    return (meta.creation_timestamp or _EPOCH, meta.name or "")


def job_update(job: Any, pod: Any | None, *, deleted: bool = False) -> JobUpdate:
    """What ``job`` and its newest ``pod`` say now."""
    phase, reason = job_phase(job, pod)
    return JobUpdate(
        namespace=job.metadata.namespace,
        name=job.metadata.name,
        phase=phase,
        labels=dict(job.metadata.labels or {}),
        reason=reason,
        pod=pod.metadata.name if pod is not None else None,
        deleted=deleted,
    )


def job_phase(job: Any, pod: Any | None) -> tuple[str, str]:
    """(phase, reason): the job's terminal conditions win; otherwise the newest pod decides."""
    status = job.status
    for condition in (status.conditions or []) if status else []:
        if condition.status != "True":
            continue
        if condition.type == "Complete":
            return "succeeded", ""
        if condition.type == "Failed":
            return "failed", _join(condition.reason, condition.message)
    if status and (status.succeeded or 0) > 0:
        return "succeeded", ""
    if pod is not None and pod.status and pod.status.phase in ("Running", "Succeeded", "Failed"):
        return "running", ""
    return "pending", scheduling_reason(pod) if pod is not None else ""


def scheduling_reason(pod: Any) -> str:
    """The scheduler's message for an unscheduled pod ("0/1 nodes are available: ...")."""
    for condition in (pod.status.conditions or []) if pod.status else []:
        if condition.type == "PodScheduled" and condition.status == "False":
            return _join(None, condition.message) or condition.reason or ""
    return ""


def _join(reason: str | None, message: str | None) -> str:
    return ": ".join(part for part in (reason, message) if part)


def pod_gpus(pod: Any) -> int:
    """GPUs a pod holds: the sum over its containers, or its largest init container if more."""
    spec = pod.spec
    main = sum(_container_gpus(c) for c in spec.containers or [])
    init = max((_container_gpus(c) for c in spec.init_containers or []), default=0)
    return max(main, init)


def _container_gpus(container: Any) -> int:
    resources = container.resources
    if resources is None:
        return 0
    value = (resources.limits or {}).get(GPU) or (resources.requests or {}).get(GPU)
    return quantity(value)


def quantity(value: str | None) -> int:
    """An integer resource quantity ("2"); extended resources like GPUs are whole numbers."""
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


def is_unscheduled_pending(pod: Any) -> bool:
    return bool(pod.status and pod.status.phase == "Pending" and not pod.spec.node_name)


# ---- API errors ------------------------------------------------------------------------------

_MESSAGE_LIMIT = 300


def is_transient(err: BaseException) -> bool:
    """Worth retrying: 429, 5xx, a dropped or refused connection, a timeout."""
    if isinstance(err, ApiException):
        return err.status == 429 or (err.status or 0) >= 500
    return isinstance(err, aiohttp.ClientError | TimeoutError)


def api_message(err: ApiException) -> str:
    """The API server's own explanation (the Status ``message``), trimmed; never headers."""
    message = ""
    try:
        body = json.loads(err.body) if err.body else {}
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
    except ValueError:
        pass
    message = " ".join((message or str(err.reason or "")).split())
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 3] + "..."
    return message or f"HTTP {err.status}"


def describe(err: BaseException) -> str:
    """A one-line, secret-free account of a failed call."""
    if isinstance(err, ApiException):
        return f"HTTP {err.status}: {api_message(err)}"
    return f"{type(err).__name__}: {err}".rstrip(": ")
