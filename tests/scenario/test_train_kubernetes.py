"""/train with the Kubernetes backend against a real control plane: signed commands in, the
bot's one watch per namespace, the test playing the kubelet, metrics from S3 on moto."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from kubernetes.aio.client import ApiClient, BatchV1Api, CoreV1Api

from bot.domain.runs import Run, RunState
from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox, running_sandbox
from integrations.kubernetes.cluster import api_client
from tests import helpers
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


def queued_run(model: str) -> Run:
    """A run row as /train writes it before asking Kubernetes."""
    return helpers.queued_run("U0ALICE", model=model, backend="kubernetes")


async def run_jobs(kube_api: ApiClient, model: str) -> list[str]:
    jobs = await BatchV1Api(kube_api).list_namespaced_job(
        NS, label_selector=f"mlops-bot/model={model},mlops-bot/run=1"
    )
    return [str(j.metadata.name) for j in jobs.items if j.metadata is not None]


async def has_job(sandbox: Sandbox) -> bool:
    run = await sandbox.bot.store.runs.get(1)
    return run is not None and run.job_name is not None


async def test_a_run_recorded_before_a_crash_gets_its_job_after_the_restart(
    bot: tuple[Sandbox, Console], kubelet: FakeKubelet, kube_api: ApiClient, model: str
) -> None:
    sandbox, _ = bot
    await sandbox.bot.store.runs.create(queued_run(model))
    await sandbox.restart()
    await eventually(lambda: has_job(sandbox), timeout=30)
    assert await run_jobs(kube_api, model) == [f"mlops-{model}-1"]
    pod = await kubelet.scheduled_pod(f"mlops-{model}-1")
    await kubelet.run(pod)
    await card_says(sandbox, "running")


async def test_a_job_created_just_before_the_crash_is_found_not_made_again(
    bot: tuple[Sandbox, Console], kubelet: FakeKubelet, kube_api: ApiClient, model: str
) -> None:
    sandbox, _ = bot
    run = await sandbox.bot.store.runs.create(queued_run(model))
    launcher = sandbox.bot.deps.training.launcher
    made = launcher.job_spec(run, sandbox.bot.settings.models[model])
    spec = dataclasses.replace(made, name=f"{made.name}-earlier")  # found by label, not name
    assert launcher.cluster is not None
    await launcher.cluster.create_job(spec)
    await sandbox.restart()
    await eventually(lambda: has_job(sandbox), timeout=30)
    resumed = await sandbox.bot.store.runs.get(1)
    assert resumed is not None and resumed.job_name == spec.name
    assert await run_jobs(kube_api, model) == [spec.name]


EXAMPLE_TEMPLATE = (
    Path(__file__).resolve().parents[2] / "examples" / "kubernetes" / "train-job.yaml"
)


def team_template(tmp_path: Path) -> Path:
    """The example template, made schedulable on the test node (no pull secret, PVC or class)."""
    data = yaml.safe_load(EXAMPLE_TEMPLATE.read_text())
    pod = data["spec"]["template"]["spec"]
    for key in ("imagePullSecrets", "priorityClassName", "serviceAccountName", "nodeSelector"):
        pod.pop(key)
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] == "dshm"]
    (train,) = pod["containers"]
    train["volumeMounts"] = [m for m in train["volumeMounts"] if m["name"] == "dshm"]
    train["env"] = [e for e in train["env"] if "valueFrom" not in e]
    train["resources"] = {  # small enough to fit beside what other tests leave on the node
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
    }
    path = tmp_path / "train-job.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def test_the_job_comes_from_the_teams_template(
    tmp_path: Path, kubeconfig: Path, kubelet: FakeKubelet, model: str
) -> None:
    config = config_file(tmp_path, kubeconfig, model, template=str(team_template(tmp_path)))
    async for sandbox, console in start(config):
        await console.execute(f"/train {model} gpus=1")
        assert f"Started run #1 of *{model}*" in replies(sandbox)[-1]
        pod = await kubelet.scheduled_pod(f"mlops-{model}-1")
        (train,) = pod.spec.containers
        assert train.resources.limits == {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}
        requests = {"cpu": "100m", "memory": "128Mi", "nvidia.com/gpu": "1"}  # GPU: API default
        assert train.resources.requests == requests
        assert train.image == "registry.example.com/ml/train:1"  # the model's image wins
        shm = next(v for v in pod.spec.volumes if v.name == "dshm")
        assert shm.empty_dir.medium == "Memory"
        assert any(t.key == "nvidia.com/gpu" for t in pod.spec.tolerations)
        assert pod.metadata.labels["team"] == "churn"


def check_config(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), "check-config"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_config_points_at_the_line_of_a_template_mistake(
    tmp_path: Path, kubeconfig: Path, model: str
) -> None:
    template = team_template(tmp_path)
    good = check_config(config_file(tmp_path, kubeconfig, model, template=str(template)))
    assert good.returncode == 0, good.stderr
    template.write_text(template.read_text().replace("sizeLimit:", "sizeLimt:"))
    bad = check_config(config_file(tmp_path, kubeconfig, model, template=str(template)))
    line = next(n for n, t in enumerate(template.read_text().splitlines(), 1) if "sizeLimt" in t)
    assert bad.returncode == 1
    assert f"models.{model}.training.kubernetes.template: {template}:{line}: " in bad.stderr
    assert "unknown field 'sizeLimt' in EmptyDirVolumeSource" in bad.stderr


async def test_a_kubernetes_run_records_the_commit_its_ref_names(
    tmp_path: Path, kubeconfig: Path, kubelet: FakeKubelet, model: str
) -> None:
    """A Job has no commit of its own: the ref is resolved through the model's GitLab project
    when the run starts, and the card shows the commit."""
    config = yaml.safe_load(config_file(tmp_path, kubeconfig, model).read_text())
    config["models"][model]["gitlab_project"] = "ml/fraud"
    path = tmp_path / "with-project.yaml"
    path.write_text(yaml.safe_dump(config))
    async for sandbox, console in start(path):
        head = sandbox.gitlab.state.project("ml/fraud").branches["main"]
        await console.execute(f"/train {model} ref=main")
        await kubelet.scheduled_pod(f"mlops-{model}-1")
        run = await sandbox.bot.store.runs.get(1)
        assert run is not None and run.sha == head
        await card_says(sandbox, f"@ `{head[:8]}`")


# ---- pending says why, early -----------------------------------------------------------------


@pytest.fixture
async def quota_namespace(kube_api: ApiClient, model: str) -> AsyncIterator[str]:
    """A training namespace of its own whose ResourceQuota allows one GPU."""
    core = CoreV1Api(kube_api)
    name = f"quota-{model}"
    await core.create_namespace({"metadata": {"name": name}})
    spec = {"hard": {"requests.nvidia.com/gpu": "1"}}
    await core.create_namespaced_resource_quota(
        name, {"metadata": {"name": "gpu-quota"}, "spec": spec}
    )

    async def counted() -> bool:  # admission only enforces a quota the controller has counted
        quota = await core.read_namespaced_resource_quota("gpu-quota", name)
        return bool(quota.status and quota.status.hard)

    await eventually(counted, timeout=30)
    yield name
    await FakeKubelet(core, name).clean_up(BatchV1Api(kube_api), f"mlops-bot/model={model}")
    await core.delete_namespace(name)


async def test_a_full_quota_shows_on_the_card_with_its_used_and_hard_values(
    tmp_path: Path, kubeconfig: Path, model: str, quota_namespace: str
) -> None:
    nowhere = {"mlops-bot/test-node": "none"}  # the pods hold quota, never the node's GPUs
    config = config_file(
        tmp_path, kubeconfig, model, namespace=quota_namespace, node_selector=nowhere
    )
    async for sandbox, console in start(config):
        await console.execute(f"/train {model} gpus=1")
        await card_says(sandbox, "0/1 nodes are available: 1 node(s) didn't match")
        await console.execute(f"/train {model} gpus=1")
        await card_says(
            sandbox,
            "ResourceQuota gpu-quota is full: requested requests.nvidia.com/gpu=1, "
            "used requests.nvidia.com/gpu=1, hard requests.nvidia.com/gpu=1",
        )
        run = await sandbox.bot.store.runs.get(2)
        assert run is not None and run.state == RunState.QUEUED


async def test_a_run_that_cannot_pull_its_image_fails_after_its_pending_timeout(
    tmp_path: Path, kubeconfig: Path, kubelet: FakeKubelet, kube_api: ApiClient, model: str
) -> None:
    config = config_file(tmp_path, kubeconfig, model, pending_timeout_seconds=10)
    async for sandbox, console in start(config):
        await console.execute(f"/train {model} gpus=1")
        pod = await kubelet.scheduled_pod(f"mlops-{model}-1")
        message = 'Back-off pulling image "registry.example.com/ml/train:1"'
        state = {"waiting": {"reason": "ImagePullBackOff", "message": message}}
        status = {"name": "train", "image": "", "imageID": "", "ready": False, "restartCount": 0}
        await kubelet.core.patch_namespaced_pod_status(
            pod.metadata.name,
            NS,
            {"status": {"phase": "Pending", "containerStatuses": [{**status, "state": state}]}},
        )
        await card_says(sandbox, "ImagePullBackOff: Back-off pulling image")
        waiting = await sandbox.bot.store.runs.get(1)
        assert waiting is not None and waiting.state == RunState.QUEUED
        await card_says(sandbox, "did not start within 10s: ImagePullBackOff")
        run = await sandbox.bot.store.runs.get(1)
        assert run is not None and run.state == RunState.FAILED
        assert run.detail == f"did not start within 10s: ImagePullBackOff: {message}"

        async def deleted() -> bool:
            await kubelet.reap(f"mlops-bot/model={model}")
            return not await run_jobs(kube_api, model)

        await eventually(deleted, timeout=30)
