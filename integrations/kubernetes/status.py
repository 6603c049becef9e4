"""What Kubernetes objects say about a run, read without I/O: a Job, its newest Pod and the
job controller's last FailedCreate event become one JobUpdate (phase and the reason it waits).

Objects are the models of ``kubernetes.aio.client`` (pydantic, snake_case attributes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.ports import JobUpdate

GPU = "nvidia.com/gpu"
FAILED_CREATE = "FailedCreate"  # the job controller's event reason when a pod create is refused
STARTING = frozenset({"ContainerCreating", "PodInitializing"})  # waiting, but not stuck
QUOTA = re.compile(  # the ResourceQuota admission plugin's refusal
    r"exceeded quota: (?P<quota>[^,\s]+), requested: (?P<requested>\S+), "
    r"used: (?P<used>\S+), limited: (?P<limited>\S+)"
)
_MESSAGE_LIMIT = 300
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Refusal:
    """The job controller's last failure to create a pod (a FailedCreate event): when it last
    happened and what it means, e.g. a ResourceQuota's requested, used and hard values."""

    at: datetime
    text: str


def newest_pod(pods: Iterable[Any]) -> Any | None:
    """The most recently created pod (the job controller's latest attempt)."""
    return max(pods, key=created, default=None)


def created(obj: Any) -> tuple[datetime, str]:
    meta = obj.metadata
    return (meta.creation_timestamp or _EPOCH, meta.name or "")


def job_update(
    job: Any, pod: Any | None, *, deleted: bool = False, refusal: Refusal | None = None
) -> JobUpdate:
    """What ``job``, its newest ``pod`` and the job controller's last ``refusal`` say now."""
    phase, reason = job_phase(job, pod, refusal)
    return JobUpdate(
        namespace=job.metadata.namespace,
        name=job.metadata.name,
        phase=phase,
        labels=dict(job.metadata.labels or {}),
        reason=reason,
        pod=pod.metadata.name if pod is not None else None,
        deleted=deleted,
    )


def job_phase(job: Any, pod: Any | None, refusal: Refusal | None = None) -> tuple[str, str]:
    """(phase, reason): the job's terminal conditions win; otherwise the newest pod decides,
    unless the job controller's last attempt to create a pod was refused after it was made."""
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
    if refusal is not None and (pod is None or created(pod)[0] < refusal.at):
        return "pending", refusal.text
    if pod is not None and pod.status and pod.status.phase in ("Running", "Succeeded", "Failed"):
        return "running", waiting_reason(pod)  # a crash loop is a running pod that waits
    if pod is None:
        return "pending", ""
    return "pending", waiting_reason(pod) or scheduling_reason(pod)


def scheduling_reason(pod: Any) -> str:
    """The scheduler's message for an unscheduled pod ("0/1 nodes are available: ...")."""
    for condition in (pod.status.conditions or []) if pod.status else []:
        if condition.type == "PodScheduled" and condition.status == "False":
            return _join(None, condition.message) or condition.reason or ""
    return ""


def waiting_reason(pod: Any) -> str:
    """Why a container of ``pod`` does not run (as the kubelet wrote it in
    ``containerStatuses[].state.waiting``): ErrImagePull, ImagePullBackOff, CrashLoopBackOff,
    CreateContainerConfigError and the like, with the kubelet's message. Init containers first;
    the ordinary steps of starting (ContainerCreating, PodInitializing) are not reasons."""
    status = pod.status
    if status is None:
        return ""
    statuses = [*(status.init_container_statuses or []), *(status.container_statuses or [])]
    for container in statuses:
        waiting = container.state.waiting if container.state else None
        if waiting is not None and waiting.reason and waiting.reason not in STARTING:
            return _join(waiting.reason, _one_line(waiting.message))
    return ""


def refusal(event: Any) -> Refusal:
    """A FailedCreate event (``Error creating: <the API server's answer>``) as a Refusal; a
    quota's answer is put in words with its requested, used and hard values."""
    message = _one_line(event.message).removeprefix("Error creating: ")
    quota = QUOTA.search(message)
    if quota is not None:
        text = (
            f"ResourceQuota {quota['quota']} is full: requested {_values(quota['requested'])}, "
            f"used {_values(quota['used'])}, hard {_values(quota['limited'])}"
        )
    else:
        text = f"{FAILED_CREATE}: {message}"
    return Refusal(at=event_time(event), text=text)


def _values(pairs: str) -> str:
    return pairs.rstrip(",").replace(",", ", ")


def event_time(event: Any) -> datetime:
    """When an event last happened: lastTimestamp (core/v1 recorders), else eventTime, else
    its creation; aggregated repeats move lastTimestamp on the same object."""
    meta = event.metadata
    stamp = event.last_timestamp or event.event_time or (meta.creation_timestamp if meta else None)
    return stamp or _EPOCH


def _one_line(text: str | None) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= _MESSAGE_LIMIT else line[: _MESSAGE_LIMIT - 3] + "..."


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
