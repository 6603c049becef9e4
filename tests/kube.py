"""A throwaway Kubernetes control plane for tests, provisioned by the project's ``scripts/kube``.

etcd + kube-apiserver + kube-controller-manager + kube-scheduler (built once from Debian's
source package and cached outside the repo) and one fake Node with 2 ``nvidia.com/gpu``.
There is no kubelet: tests play it by patching Pod status.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes.aio.client import ApiException

from tests.pg import free_port

T = TypeVar("T")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kube"
BUILD_TIMEOUT = 3600.0  # the first build compiles Kubernetes: ~5 min on 2 cores, more when slow
START_TIMEOUT = 180.0
NODE = "gpu-node-1"
NODE_GPUS = 2


class KubeUnavailable(RuntimeError):
    """The script could not provision a control plane; the message carries its output."""


def _run(*args: str, timeout: float) -> str:
    try:
        done = subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise KubeUnavailable(f"{SCRIPT.name} {args[0]}: {err}") from err
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-30:])
        raise KubeUnavailable(f"{SCRIPT.name} {args[0]} failed:\n{tail}")
    return done.stdout.strip()


def _stop(workdir: str) -> None:
    try:
        _run("stop", workdir, timeout=60)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class ControlPlane:
    kubeconfig: Path
    workdir: Path

    def restart_apiserver(self) -> None:
        """Kill and restart kube-apiserver: connections drop and its watch cache starts afresh."""
        _run("restart", str(self.workdir), timeout=START_TIMEOUT)


@contextmanager
def running_kube() -> Iterator[ControlPlane]:
    """Build if needed, start in a fresh temp dir, yield it, stop it and remove the dir."""
    _run("build", timeout=BUILD_TIMEOUT)  # a no-op when the binaries are cached
    workdir = tempfile.mkdtemp(prefix="mlops-bot-kube-")
    try:
        output = _run("start", workdir, str(free_port()), timeout=START_TIMEOUT)
    except KubeUnavailable:
        with suppress(KubeUnavailable):  # the start failure is the one worth reporting
            _stop(workdir)
        raise
    try:
        yield ControlPlane(Path(output.splitlines()[-1]), Path(workdir))
    finally:
        _stop(workdir)


def provision_or_skip(stack: ExitStack) -> ControlPlane:
    """A running control plane; skip the tests when impossible, but fail them on CI."""
    try:
        return stack.enter_context(running_kube())
    except KubeUnavailable as err:
        reason = f"Kubernetes could not be provisioned by scripts/kube: {err}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {probe}")
        await asyncio.sleep(0.2)


class FakeKubelet:
    """Plays the missing kubelet: moves pods through their phases and finishes deletions."""

    def __init__(self, core: Any, namespace: str) -> None:
        self.core = core
        self.namespace = namespace

    async def pods(self, selector: str) -> list[Any]:
        listing = await self.core.list_namespaced_pod(self.namespace, label_selector=selector)
        return list(listing.items)

    async def scheduled_pod(self, job_name: str) -> Any:
        """The job's pod once the scheduler has bound it to a node."""

        async def bound() -> Any:
            pods = await self.pods(f"job-name={job_name}")
            return next((p for p in pods if p.spec.node_name), None)

        return await eventually(bound)

    async def run(self, pod: Any) -> None:
        now = _now()
        state = {"running": {"startedAt": now}}
        await self._set_status(pod, "Running", state, ready=True)

    async def succeed(self, pod: Any) -> None:
        now = _now()
        done = {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}
        await self._set_status(pod, "Succeeded", {"terminated": done}, ready=False)

    async def _set_status(self, pod: Any, phase: str, state: dict[str, Any], ready: bool) -> None:
        container = pod.spec.containers[0]
        status = {
            "phase": phase,
            "startTime": _now(),
            "conditions": [{"type": "Ready", "status": str(ready), "lastTransitionTime": _now()}],
            "containerStatuses": [
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 0,
                    "state": state,
                }
            ],
        }
        await self.core.patch_namespaced_pod_status(
            pod.metadata.name, self.namespace, {"status": status}
        )

    async def reap(self, selector: str) -> None:
        """Finish deletions the way a kubelet does once containers are gone (grace 0)."""
        for pod in await self.pods(selector):
            if pod.metadata.deletion_timestamp is not None:
                await self._force_delete(pod.metadata.name)

    async def clean_up(self, batch: Any, selector: str) -> None:
        """Remove every job and pod a test made, so the node's GPUs are free for the next."""
        await batch.delete_collection_namespaced_job(
            self.namespace, label_selector=selector, propagation_policy="Background"
        )
        for pod in await self.pods(selector):
            await self._force_delete(pod.metadata.name)

    async def _force_delete(self, name: str) -> None:
        with suppress(ApiException):  # already gone
            await self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
