"""The team's Job template: checked against the Job schema with the line of each mistake, then
filled in for a run and otherwise kept as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.ports import JobSpec
from integrations.kubernetes.manifests import job_manifest
from integrations.kubernetes.templates import TemplateError, load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kubernetes" / "train-job.yaml"


def spec(**changes: object) -> JobSpec:
    values: dict[str, object] = {
        "name": "mlops-fraud-7",
        "namespace": "ml",
        "image": "",
        "labels": {"app.kubernetes.io/managed-by": "mlops-bot", "mlops-bot/run": "7"},
        "env": {"MLOPS_RUN_ID": "7", "DATA_BUCKET": "other"},
        "gpus": 3,
        "active_deadline_seconds": 600,
    }
    return JobSpec(**(values | changes))  # type: ignore[arg-type]


def broken(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / "job.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_example_is_a_valid_template() -> None:
    assert load(EXAMPLE)["kind"] == "Job"


@pytest.mark.parametrize(
    ("old", "new", "line", "where", "what"),
    [
        ("tolerations:", "toleration:", "toleration:", "spec.template.spec.toleration", "unknown"),
        ("backoffLimit: 0", "backoffLimit: lots", "backoffLimit", "spec.backoffLimit", "integer"),
        ("medium: Memory", "medium: [Memory]", "medium:", "emptyDir.medium", "must be a string"),
        ("- name: train", "- name: trainer", "containers:", "spec.containers", "named 'train'"),
        ("kind: Job", "kind: CronJob", "kind:", "kind", "batch/v1, kind Job"),
    ],
)
def test_a_mistake_is_named_with_its_line(
    tmp_path: Path, old: str, new: str, line: str, where: str, what: str
) -> None:
    path = broken(tmp_path, old, new)
    with pytest.raises(TemplateError) as raised:
        load(path)
    (problem,) = raised.value.problems
    assert problem.startswith(f"{path}:{line_of(path, line)}: ")
    assert where in problem and what in problem


def test_bad_yaml_names_its_line(tmp_path: Path) -> None:
    path = broken(tmp_path, "  backoffLimit: 0", "  backoffLimit: [0")
    with pytest.raises(TemplateError, match=rf"{path}:\d+: not valid YAML"):
        load(path)


def test_the_run_is_filled_in_and_the_rest_kept() -> None:
    template = load(EXAMPLE)
    job = job_manifest(spec(), template)
    assert job["metadata"]["name"] == "mlops-fraud-7" and job["metadata"]["namespace"] == "ml"
    assert job["metadata"]["labels"] == {"team": "churn", **spec().labels}
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"]["mlops-bot/run"] == "7"
    (train,) = pod["spec"]["containers"]
    assert train["image"].endswith("churn-train:main")  # no image in the settings: kept
    assert train["resources"]["limits"] == {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "3"}
    assert train["resources"]["requests"] == {"cpu": "8", "memory": "48Gi"}
    env = {e["name"]: e for e in train["env"]}
    assert env["DATA_BUCKET"]["value"] == "other" and env["MLOPS_RUN_ID"]["value"] == "7"
    assert "valueFrom" in env["WANDB_API_KEY"]
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["ttlSecondsAfterFinished"] == 604800
    assert pod["spec"]["volumes"] == template["spec"]["template"]["spec"]["volumes"]
    assert template["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "ml-data"


def test_no_gpus_means_no_gpu_limit() -> None:
    (train,) = job_manifest(spec(gpus=0), load(EXAMPLE))["spec"]["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in train["resources"]["limits"]
