"""Pure translation between the bot's job types and Kubernetes objects and errors (no I/O).

Objects are the models of ``kubernetes.aio.client`` (pydantic, snake_case attributes).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes.aio.client import ApiException, V1Job

from bot.ports import JobSpec
from integrations.kubernetes.status import GPU

JOB_NAME_LABEL = "job-name"  # set on every pod by the job controller
CONTAINER = "train"


def job_manifest(spec: JobSpec, template: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The batch/v1 Job for ``spec``, as the JSON the API server takes; with the team's
    ``template``, that Job filled in (see ``from_template``)."""
    if template is not None:
        return from_template(spec, template)
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


def from_template(spec: JobSpec, template: Mapping[str, Any]) -> dict[str, Any]:
    """The template with what belongs to the run filled in: name, namespace and labels (on the
    Job and its pods), the ``train`` container's image, env and GPU limit (and request, if the
    template requests GPUs), the deadline; command, args, node selector, tolerations and
    service account only when the model's settings give them. Everything else stays as written."""
    job = copy.deepcopy(dict(template))
    meta = job.setdefault("metadata", {})
    meta.update(name=spec.name, namespace=spec.namespace)
    meta["labels"] = {**(meta.get("labels") or {}), **spec.labels}
    body = job.setdefault("spec", {})
    body.setdefault("backoffLimit", spec.backoff_limit)
    if spec.active_deadline_seconds is not None:
        body["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if spec.ttl_seconds_after_finished is not None:
        body.setdefault("ttlSecondsAfterFinished", spec.ttl_seconds_after_finished)
    pod_meta = body.setdefault("template", {}).setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **spec.labels}
    pod = body["template"].setdefault("spec", {})
    pod.setdefault("restartPolicy", "Never")
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = [dict(toleration) for toleration in spec.tolerations]
    if spec.service_account:
        pod["serviceAccountName"] = spec.service_account
    _fill_container(spec, pod)
    return job


def _fill_container(spec: JobSpec, pod: dict[str, Any]) -> None:
    containers = pod.setdefault("containers", [])
    container = next((c for c in containers if c.get("name") == CONTAINER), None)
    if container is None:
        container = {"name": CONTAINER}
        containers.append(container)
    if spec.image:
        container["image"] = spec.image
    if spec.command:
        container["command"] = list(spec.command)
    if spec.args:
        container["args"] = list(spec.args)
    kept = [e for e in container.get("env") or [] if e.get("name") not in spec.env]
    container["env"] = kept + [{"name": k, "value": v} for k, v in spec.env.items()]
    resources = container.setdefault("resources", {})
    for kind in ("limits", "requests"):
        values = dict(resources.get(kind) or {})
        values.pop(GPU, None)
        if spec.gpus > 0 and (kind == "limits" or GPU in (resources.get(kind) or {})):
            values[GPU] = str(spec.gpus)
        if values:
            resources[kind] = values
        else:
            resources.pop(kind, None)


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


def to_job(spec: JobSpec, template: Mapping[str, Any] | None = None) -> Any:
    """The manifest as the client's model (raises pydantic's ValidationError on bad types)."""
    return V1Job.from_dict(job_manifest(spec, template))


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
