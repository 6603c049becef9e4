"""KubernetesCluster against a real control plane (etcd, apiserver, controllers, scheduler).

The job controller really creates pods, the scheduler really binds them to the one fake node
(2 GPUs) or leaves them Pending with its reason; the tests play the kubelet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
import structlog
from kubernetes.aio.client import ApiClient, BatchV1Api, V1Job

from bot.errors import Conflict, ExternalError, UserInputError
from bot.ports import JobSpec, JobUpdate
from integrations.kubernetes.cluster import KubernetesCluster, api_client
from integrations.kubernetes.watch import SYNC, JobBook, Source, WatchTiming, resource_events
from tests.kube import (
    NODE,
    NODE_GPUS,
    ControlPlane,
    FakeKubelet,
    eventually,
)
from tests.pg import free_port

NS = "default"
IMAGE = "registry.example.com/ml/fraud-train:1.4"
UPDATE_TIMEOUT = 30.0


@pytest.fixture
async def cluster(kubeconfig: Path) -> AsyncIterator[KubernetesCluster]:
    cluster = await KubernetesCluster.from_kubeconfig(kubeconfig, watch_seconds=3)
    yield cluster
    await cluster.close()


def job_spec(labels: dict[str, str], *, gpus: int = 1, **changes: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "name": f"train-{uuid.uuid4().hex[:8]}",
        "namespace": NS,
        "image": IMAGE,
        "labels": labels,
        "env": {"DATASET": "v7", "LR": "0.01"},
        "gpus": gpus,
        "command": ("python", "-m", "train"),
        "args": ("--epochs", "3"),
        "ttl_seconds_after_finished": 3600,
        "active_deadline_seconds": 7200,
    }
    return JobSpec(**(fields | changes))


async def next_update(
    updates: AsyncIterator[JobUpdate], name: str, matches: Callable[[JobUpdate], bool]
) -> JobUpdate:
    """The first update of job ``name`` that ``matches``, within UPDATE_TIMEOUT."""
    async with asyncio.timeout(UPDATE_TIMEOUT):
        async for update in updates:
            if update.name == name and matches(update):
                return update
    raise AssertionError("the watch ended")


def phase_is(phase: str) -> Callable[[JobUpdate], bool]:
    return lambda update: update.phase == phase


# ---- a job's life ------------------------------------------------------------------------------


async def test_gpu_job_is_scheduled_runs_and_succeeds_as_the_watch_reports(
    cluster: KubernetesCluster, kubelet: FakeKubelet, labels: dict[str, str], selector: str
) -> None:
    spec = job_spec(labels, gpus=1)
    async with aclosing(cluster.watch_jobs(NS, selector)) as updates:
        await cluster.create_job(spec)
        pending = await next_update(updates, spec.name, phase_is("pending"))
        assert pending.labels == labels and not pending.deleted
        pod = await kubelet.scheduled_pod(spec.name)
        assert pod.spec.node_name == NODE
        container = pod.spec.containers[0]
        assert container.resources.limits == {"nvidia.com/gpu": "1"}
        assert {e.name: e.value for e in container.env} == {"DATASET": "v7", "LR": "0.01"}
        await kubelet.run(pod)
        running = await next_update(updates, spec.name, phase_is("running"))
        assert running.pod == pod.metadata.name
        await kubelet.succeed(pod)
        await next_update(updates, spec.name, phase_is("succeeded"))
    now = await cluster.job_update(NS, spec.name)
    assert now is not None and now.phase == "succeeded" and now.pod == pod.metadata.name


async def test_job_wanting_more_gpus_than_a_node_has_stays_pending_with_the_schedulers_reason(
    cluster: KubernetesCluster, kubelet: FakeKubelet, labels: dict[str, str], selector: str
) -> None:
    spec = job_spec(labels, gpus=NODE_GPUS + 1)
    await cluster.create_job(spec)

    async def judged() -> list[Any]:  # until the scheduler has tried, the reason is a placeholder
        pending = await cluster.pending_gpu_jobs(NS, selector)
        return [job for job in pending if "Insufficient nvidia.com/gpu" in job.reason]

    [pending] = await eventually(judged)
    assert (pending.name, pending.gpus) == (spec.name, NODE_GPUS + 1)
    update = await cluster.job_update(NS, spec.name)
    assert update is not None and update.phase == "pending"
    assert "Insufficient nvidia.com/gpu" in update.reason and update.pod is not None
    assert not [pod for pod in await kubelet.pods(selector) if pod.spec.node_name]


async def test_gpu_nodes_count_what_bound_unfinished_pods_hold(
    cluster: KubernetesCluster, kubelet: FakeKubelet, labels: dict[str, str]
) -> None:
    before = {n.node: n for n in await cluster.gpu_nodes()}
    assert before[NODE].allocatable == NODE_GPUS
    spec = job_spec(labels, gpus=1)
    await cluster.create_job(spec)
    pod = await kubelet.scheduled_pod(spec.name)
    held = {n.node: n for n in await cluster.gpu_nodes()}
    assert held[NODE].requested == before[NODE].requested + 1
    await kubelet.succeed(pod)
    after = {n.node: n for n in await cluster.gpu_nodes()}
    assert after[NODE].requested == before[NODE].requested


async def test_the_stored_job_carries_the_whole_spec(
    kube_api: ApiClient, cluster: KubernetesCluster, kubelet: FakeKubelet, labels: dict[str, str]
) -> None:
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    spec = job_spec(
        labels,
        node_selector={"nvidia.com/gpu.present": "true"},
        tolerations=(toleration,),
        service_account="default",
        backoff_limit=1,
    )
    await cluster.create_job(spec)
    job = await BatchV1Api(kube_api).read_namespaced_job(spec.name, NS)
    assert job.spec is not None and job.metadata is not None
    assert job.metadata.labels is not None and labels.items() <= job.metadata.labels.items()
    assert (job.spec.backoff_limit, job.spec.active_deadline_seconds) == (1, 7200)
    assert job.spec.ttl_seconds_after_finished == 3600
    pod_spec = job.spec.template.spec
    assert pod_spec is not None and pod_spec.restart_policy == "Never"
    assert pod_spec.node_selector == {"nvidia.com/gpu.present": "true"}
    assert pod_spec.service_account_name == "default"
    assert [(t.key, t.operator, t.effect) for t in pod_spec.tolerations or []] == [
        ("nvidia.com/gpu", "Exists", "NoSchedule")
    ]
    [container] = pod_spec.containers
    assert (container.name, container.image) == ("train", IMAGE)
    assert (container.command, container.args) == (["python", "-m", "train"], ["--epochs", "3"])
    assert (await kubelet.scheduled_pod(spec.name)).spec.node_name == NODE


# ---- what the API server refuses -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "quoted"),
    [
        ({"name": "Train_Fraud"}, "RFC 1123"),
        ({"image": ""}, "spec.template.spec.containers[0].image: Required value"),
        ({"labels": {"mlops-bot/model": "fraud detector"}}, 'Invalid value: "fraud detector"'),
    ],
)
async def test_an_invalid_job_is_a_user_error_quoting_the_api_server(
    cluster: KubernetesCluster, labels: dict[str, str], changes: dict[str, Any], quoted: str
) -> None:
    with pytest.raises(UserInputError) as caught:
        await cluster.create_job(dataclasses.replace(job_spec(labels), **changes))
    assert quoted in str(caught.value)
    assert "Authorization" not in str(caught.value)


async def test_creating_a_job_again_is_idempotent_but_a_different_one_conflicts(
    cluster: KubernetesCluster, kubelet: FakeKubelet, labels: dict[str, str]
) -> None:
    spec = job_spec(labels)
    await cluster.create_job(spec)
    await cluster.create_job(spec)  # a retried create of the same run
    other = dataclasses.replace(spec, labels={**labels, "mlops-bot/run": "other"})
    with pytest.raises(Conflict, match="already exists"):
        await cluster.create_job(other)


async def test_delete_job_removes_the_job_and_its_pods(
    cluster: KubernetesCluster, kubelet: FakeKubelet, labels: dict[str, str], selector: str
) -> None:
    spec = job_spec(labels, gpus=1)
    await cluster.create_job(spec)
    await kubelet.scheduled_pod(spec.name)
    await cluster.delete_job(NS, spec.name)

    async def gone() -> bool:
        await kubelet.reap(selector)  # a bound pod waits for its kubelet to confirm
        return await cluster.job_update(NS, spec.name) is None and not await kubelet.pods(selector)

    await eventually(gone)
    await cluster.delete_job(NS, spec.name)  # already gone: fine


async def test_pod_log_tail_is_empty_without_a_pod_and_a_placeholder_without_a_kubelet(
    cluster: KubernetesCluster, kubelet: FakeKubelet, labels: dict[str, str]
) -> None:
    assert await cluster.pod_log_tail(NS, "no-such-job") == ""
    spec = job_spec(labels)
    await cluster.create_job(spec)
    await kubelet.scheduled_pod(spec.name)
    assert (await cluster.pod_log_tail(NS, spec.name)).startswith("(no log available: ")


async def test_an_unreachable_api_server_is_an_external_error_without_the_token(
    kubeconfig: Path,
) -> None:
    api = await api_client(kubeconfig)
    token = str(api.configuration.api_key["BearerToken"])
    api.configuration.host = f"https://127.0.0.1:{free_port()}"
    cluster = KubernetesCluster(api, request_timeout=2, attempts=2, backoff=0.01)
    try:
        with pytest.raises(ExternalError, match="after 2 attempts") as caught:
            await cluster.job_update(NS, "anything")
    finally:
        await cluster.close()
    assert token.split()[-1] not in str(caught.value)


# ---- watches that are cut ------------------------------------------------------------------------


async def test_a_new_watch_reports_what_happened_while_none_was_running(
    cluster: KubernetesCluster, kubelet: FakeKubelet, labels: dict[str, str], selector: str
) -> None:
    spec = job_spec(labels)
    async with aclosing(cluster.watch_jobs(NS, selector)) as updates:
        await cluster.create_job(spec)
        pod = await kubelet.scheduled_pod(spec.name)
        await kubelet.run(pod)
        await next_update(updates, spec.name, phase_is("running"))
    await kubelet.succeed(pod)  # nobody is watching
    await eventually(lambda: _phase_now(cluster, spec.name, "succeeded"))
    async with aclosing(cluster.watch_jobs(NS, selector)) as updates:
        await next_update(updates, spec.name, phase_is("succeeded"))
        await cluster.delete_job(NS, spec.name)
        await next_update(updates, spec.name, lambda update: update.deleted)


async def _phase_now(cluster: KubernetesCluster, name: str, phase: str) -> bool:
    update = await cluster.job_update(NS, name)
    return update is not None and update.phase == phase


async def test_a_resource_version_older_than_the_servers_cache_is_answered_by_a_fresh_list(
    control_plane: ControlPlane,
    kube_api: ApiClient,
    cluster: KubernetesCluster,
    labels: dict[str, str],
    selector: str,
) -> None:
    batch = BatchV1Api(kube_api)
    spec = job_spec(labels, gpus=0)
    await cluster.create_job(spec)
    listing = await batch.list_namespaced_job(NS, label_selector=selector)
    assert listing.metadata is not None
    stale = listing.metadata.resource_version
    note = {"metadata": {"annotations": {"mlops-bot/note": "written after the stale version"}}}
    await batch.patch_namespaced_job(spec.name, NS, note)
    # A restarted apiserver's watch cache starts at the newest revision: ``stale`` is too old.
    await asyncio.to_thread(control_plane.restart_apiserver)
    source = Source(batch.list_namespaced_job, selector)
    events = resource_events(source, NS, WatchTiming(), stale)
    with structlog.testing.capture_logs() as logs:
        async with aclosing(events):
            kind, items = await anext(events)
    assert "kube_watch.gone" in [entry["event"] for entry in logs]  # the 410 Gone
    assert kind == SYNC and [job.metadata.annotations for job in items] == [
        note["metadata"]["annotations"]
    ]


async def test_a_watch_outlives_an_apiserver_restart_and_reports_the_final_state(
    control_plane: ControlPlane,
    cluster: KubernetesCluster,
    kubelet: FakeKubelet,
    labels: dict[str, str],
    selector: str,
) -> None:
    spec = job_spec(labels)
    with structlog.testing.capture_logs() as logs:
        async with aclosing(cluster.watch_jobs(NS, selector)) as updates:
            await cluster.create_job(spec)
            pod = await kubelet.scheduled_pod(spec.name)
            await kubelet.run(pod)
            await next_update(updates, spec.name, phase_is("running"))
            await asyncio.to_thread(control_plane.restart_apiserver)  # the streams break
            await kubelet.succeed(pod)
            await next_update(updates, spec.name, phase_is("succeeded"))
    assert "kube_watch.retry" in [entry["event"] for entry in logs]  # it did reconnect


async def test_a_watch_that_ends_resumes_from_its_last_resource_version(
    kube_api: ApiClient, cluster: KubernetesCluster, labels: dict[str, str], selector: str
) -> None:
    batch = BatchV1Api(kube_api)
    timing = WatchTiming(watch_seconds=1)
    kinds: list[str] = []
    source = Source(batch.list_namespaced_job, selector)
    async with aclosing(resource_events(source, NS, timing)) as events:
        kind, _ = await anext(events)
        kinds.append(kind)
        await asyncio.sleep(2.5)  # the server ends the watch twice meanwhile
        spec = job_spec(labels, gpus=0)
        await cluster.create_job(spec)
        kind, job = await anext(events)
        kinds.append(kind)
    assert kinds == [SYNC, "ADDED"] and job.metadata.name == spec.name


# ---- folding events (no cluster needed) ------------------------------------------------------


def _job(name: str, **status: Any) -> Any:
    meta = {"name": name, "namespace": NS, "labels": {"app": "x"}}
    return V1Job.from_dict({"metadata": meta, "status": status})


def test_a_relist_reports_jobs_that_vanished_meanwhile_as_deleted() -> None:
    book = JobBook()
    book.apply("pod", SYNC, [])
    assert [u.name for u in book.apply("job", SYNC, [_job("a"), _job("b")])] == ["a", "b"]
    updates = book.apply("job", SYNC, [_job("b", succeeded=1)])
    assert [(u.name, u.phase, u.deleted) for u in updates] == [
        ("a", "pending", True),
        ("b", "succeeded", False),
    ]


def test_between_lists_only_changes_are_reported() -> None:
    book = JobBook()
    assert book.apply("job", SYNC, [_job("a")]) == []  # held until the pods are listed too
    assert [u.phase for u in book.apply("pod", SYNC, [])] == ["pending"]
    assert book.apply("job", "MODIFIED", _job("a")) == []
    assert [u.phase for u in book.apply("job", "MODIFIED", _job("a", succeeded=1))] == ["succeeded"]
