"""Why a Job waits, as the namespace's one watch reports it, on a real control plane.

The job controller, the ResourceQuota admission plugin and the scheduler are real: a full quota
really refuses the controller's pod (a FailedCreate event on the Job), a GPU request larger than
the node really stays unscheduled with the scheduler's message. There is no kubelet: the tests
write what it would into the pod's status (``containerStatuses[].state.waiting``), with the
kubelet's own reasons and message formats.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from kubernetes.aio.client import ApiClient, BatchV1Api, CoreV1Api

from integrations.kubernetes.cluster import KubernetesCluster
from tests.integration.test_kubernetes import IMAGE, job_spec, next_update
from tests.kube import NODE_GPUS, FakeKubelet, eventually

NS = "default"
QUOTA = "gpu-quota"


@pytest.fixture
async def cluster(kubeconfig: Path) -> AsyncIterator[KubernetesCluster]:
    cluster = await KubernetesCluster.from_kubeconfig(
        kubeconfig, watch_seconds=3, resync_seconds=1.0
    )
    yield cluster
    await cluster.close()


@pytest.fixture
async def quota_namespace(kube_api: ApiClient, selector: str) -> AsyncIterator[str]:
    """A namespace of its own whose ResourceQuota allows one GPU (counted before use)."""
    core = CoreV1Api(kube_api)
    name = f"quota-{uuid.uuid4().hex[:8]}"
    await core.create_namespace({"metadata": {"name": name}})
    hard = {"requests.nvidia.com/gpu": "1"}
    await core.create_namespaced_resource_quota(
        name, {"metadata": {"name": QUOTA}, "spec": {"hard": hard}}
    )

    async def counted() -> bool:  # admission only enforces a quota the controller has counted
        quota = await core.read_namespaced_resource_quota(QUOTA, name)
        return bool(quota.status and quota.status.hard)

    await eventually(counted)
    yield name
    await FakeKubelet(core, name).clean_up(BatchV1Api(kube_api), selector)
    await core.delete_namespace(name)


async def test_a_full_resource_quota_is_reported_with_its_used_and_hard_values(
    cluster: KubernetesCluster, quota_namespace: str, labels: dict[str, str], selector: str
) -> None:
    ns = quota_namespace
    nowhere = {"mlops-bot/test-node": "none"}  # holds the quota, never a node's GPU
    holder = job_spec(labels, namespace=ns, node_selector=nowhere)
    refused = job_spec(labels, namespace=ns)
    async with aclosing(cluster.watch_jobs(ns, selector)) as updates:
        await cluster.create_job(holder)
        await next_update(updates, holder.name, lambda update: update.pod is not None)
        await cluster.create_job(refused)
        update = await next_update(updates, refused.name, lambda u: "ResourceQuota" in u.reason)
    assert (update.phase, update.pod) == ("pending", None)
    assert update.reason == (
        f"ResourceQuota {QUOTA} is full: requested requests.nvidia.com/gpu=1, "
        "used requests.nvidia.com/gpu=1, hard requests.nvidia.com/gpu=1"
    )
    read = await cluster.job_update(ns, refused.name)  # the same without a watch
    assert read is not None and read.reason == update.reason


async def test_a_gpu_request_no_node_can_meet_is_reported_and_reported_again(
    cluster: KubernetesCluster, kubelet: FakeKubelet, labels: dict[str, str], selector: str
) -> None:
    spec = job_spec(labels, gpus=NODE_GPUS + 1)
    async with aclosing(cluster.watch_jobs(NS, selector)) as updates:
        await cluster.create_job(spec)
        first = await next_update(updates, spec.name, lambda u: "Insufficient" in u.reason)
        started = asyncio.get_running_loop().time()
        again = await next_update(updates, spec.name, lambda u: True)  # the 1 s resync
        waited = asyncio.get_running_loop().time() - started
    assert first.phase == "pending" and first.pod is not None
    assert first.reason.startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu")
    assert again == first and waited < 3.0


def waiting(pod: Any, reason: str, message: str) -> dict[str, Any]:
    """A container status the kubelet writes while the container cannot run."""
    return {
        "name": "train",
        "image": IMAGE,
        "imageID": "",
        "ready": False,
        "restartCount": 4 if reason == "CrashLoopBackOff" else 0,
        "state": {"waiting": {"reason": reason, "message": message}},
    }


# The kubelet's reasons with its message formats (pkg/kubelet/images, kuberuntime, secret manager).
KUBELET_WAITS = [
    (
        "Pending",
        "ErrImagePull",
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{IMAGE}": not found',
    ),
    ("Pending", "ImagePullBackOff", f'Back-off pulling image "{IMAGE}"'),
    ("Pending", "CreateContainerConfigError", 'secret "s3-credentials" not found'),
    ("Running", "CrashLoopBackOff", "back-off 40s restarting failed container=train pod={pod}"),
]


@pytest.mark.parametrize(("phase", "reason", "message"), KUBELET_WAITS)
async def test_what_the_kubelet_says_a_container_waits_for_is_reported(
    cluster: KubernetesCluster,
    kubelet: FakeKubelet,
    labels: dict[str, str],
    selector: str,
    phase: str,
    reason: str,
    message: str,
) -> None:
    spec = job_spec(labels)
    async with aclosing(cluster.watch_jobs(NS, selector)) as updates:
        await cluster.create_job(spec)
        pod = await kubelet.scheduled_pod(spec.name)
        text = message.format(pod=f"{pod.metadata.name}_{NS}({pod.metadata.uid})")
        status = {"phase": phase, "containerStatuses": [waiting(pod, reason, text)]}
        await kubelet.core.patch_namespaced_pod_status(pod.metadata.name, NS, {"status": status})
        update = await next_update(updates, spec.name, lambda u: u.reason != "")
    expected = "running" if phase == "Running" else "pending"
    assert (update.phase, update.reason) == (expected, f"{reason}: {text}")
