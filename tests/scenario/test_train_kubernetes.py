"""/train with the Kubernetes backend against a real control plane: signed commands in, the
bot's one watch per namespace, the test playing the kubelet, metrics from S3 on moto."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from kubernetes.aio.client import ApiClient, BatchV1Api, CoreV1Api

from bot.domain.runs import RunState
from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox, running_sandbox
from integrations.kubernetes.cluster import api_client
from tests.helpers import eventually
from tests.kube import FakeKubelet

NS = "default"
BUCKET = "ml-artifacts"


@pytest.fixture
def model() -> str:
    """A model name of this test only, so its Jobs never meet another test's."""
    return "gpu" + uuid.uuid4().hex[:8]


def config_file(tmp_path: Path, kubeconfig: Path, model: str, **template: object) -> Path:
    data = {
        "roles": {"admin": ["U0EVE"], "viewer": ["U0DAVE"]},
        "kubernetes": {"kubeconfig": str(kubeconfig)},
        "models": {
            model: {
                "channel": "#ml-fraud",
                "roles": {"trainer": ["U0ALICE"]},
                "training": {
                    "backend": "kubernetes",
                    "max_gpus": 4,
                    "kubernetes": {
                        "namespace": NS,
                        "image": "registry.example.com/ml/train:1",
                        "command": ["python", "train.py"],
                        "metrics_bucket": BUCKET,
                        "metrics_key": "runs/{model}/{run_id}/metrics.json",
                        **template,
                    },
                    "gate": {"min": {"accuracy": 0.9}},
                },
            }
        },
    }
    path = tmp_path / "bot.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
async def kube_api(kubeconfig: Path) -> AsyncIterator[ApiClient]:
    api = await api_client(kubeconfig)
    yield api
    await api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
async def kubelet(kube_api: ApiClient, model: str) -> AsyncIterator[FakeKubelet]:
    kubelet = FakeKubelet(CoreV1Api(kube_api), NS)
    yield kubelet
    await kubelet.clean_up(BatchV1Api(kube_api), f"mlops-bot/model={model}")


async def start(config: Path) -> AsyncIterator[tuple[Sandbox, Console]]:
    async with running_sandbox(config) as sandbox, aiohttp.ClientSession() as http:
        yield sandbox, sandbox.console(io.StringIO(), http)


@pytest.fixture
async def bot(
    tmp_path: Path, kubeconfig: Path, model: str
) -> AsyncIterator[tuple[Sandbox, Console]]:
    async for pair in start(config_file(tmp_path, kubeconfig, model)):
        yield pair


def card(sandbox: Sandbox) -> str:
    cards = [
        m
        for m in sandbox.slack.messages
        if m.channel == "C0FRAUD" and not m.ephemeral_to and not m.thread_ts
    ]
    return json.dumps([c.blocks for c in cards])


async def card_says(sandbox: Sandbox, text: str) -> None:
    async def shown() -> bool:
        await sandbox.bot.notifier.flush()
        return text in card(sandbox)

    await eventually(shown, timeout=30)


def replies(sandbox: Sandbox) -> list[str]:
    return [m.text for m in sandbox.slack.messages if m.ephemeral_to]


async def test_a_gpu_job_runs_to_completion_with_metrics_from_s3(
    bot: tuple[Sandbox, Console], kubelet: FakeKubelet, model: str
) -> None:
    sandbox, console = bot
    assert sandbox.aws is not None
    s3 = sandbox.aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    report = {"metrics": {"accuracy": 0.94}, "test_set": "v1"}
    s3.put_object(Bucket=BUCKET, Key=f"runs/{model}/1/metrics.json", Body=json.dumps(report))

    await console.execute(f"/train {model} gpus=1 dataset=v7 lr=0.01")
    assert f"Started run #1 of *{model}*" in replies(sandbox)[-1]
    pod = await kubelet.scheduled_pod(f"mlops-{model}-1")
    container = pod.spec.containers[0]
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    env = {e.name: e.value for e in container.env}
    assert env["MLOPS_DATASET"] == "v7" and env["HP_LR"] == "0.01"
    await kubelet.run(pod)
    await card_says(sandbox, "running")
    await kubelet.succeed(pod)
    await card_says(sandbox, "gate passed")
    run = await sandbox.bot.store.runs.get(1)
    assert run is not None and run.state == RunState.SUCCEEDED
    assert run.metrics == {"accuracy": 0.94} and run.job_name == f"mlops-{model}-1"


async def test_too_many_gpus_stays_pending_and_says_why(
    bot: tuple[Sandbox, Console], kubelet: FakeKubelet, model: str
) -> None:
    sandbox, console = bot
    await console.execute(f"/train {model} gpus=3")
    await card_says(sandbox, "Insufficient nvidia.com/gpu")
    await console.execute("/train gpus")
    gpus = json.dumps(sandbox.slack.messages[-1].blocks)
    assert "/2 GPUs requested" in gpus
    assert f"mlops-{model}-1" in gpus and "Insufficient nvidia.com/gpu" in gpus
    run = await sandbox.bot.store.runs.get(1)
    assert run is not None and run.state == RunState.QUEUED


async def test_cancel_deletes_the_job_and_its_pods(
    bot: tuple[Sandbox, Console], kubelet: FakeKubelet, kube_api: ApiClient, model: str
) -> None:
    sandbox, console = bot
    await console.execute(f"/train {model} gpus=1")
    await kubelet.scheduled_pod(f"mlops-{model}-1")
    await console.execute(f"/train {model} cancel 1")
    assert "is canceled" in replies(sandbox)[-1]
    batch = BatchV1Api(kube_api)

    async def gone() -> bool:
        await kubelet.reap(f"mlops-bot/model={model}")
        jobs = await batch.list_namespaced_job(NS, label_selector=f"mlops-bot/model={model}")
        return not jobs.items and not await kubelet.pods(f"mlops-bot/model={model}")

    await eventually(gone, timeout=30)
    await card_says(sandbox, "canceled by")


async def test_a_template_the_api_server_rejects_is_a_clear_error(
    tmp_path: Path, kubeconfig: Path, model: str
) -> None:
    config = config_file(tmp_path, kubeconfig, model, node_selector={"bad key!": "x"})
    async for sandbox, console in start(config):
        await console.execute(f"/train {model} gpus=1")
        assert "Kubernetes rejected" in replies(sandbox)[-1]
        await card_says(sandbox, "could not start")
        run = await sandbox.bot.store.runs.get(1)
        assert run is not None and run.state == RunState.FAILED
