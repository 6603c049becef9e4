"""What reference/ecspresso/NOTES.md says the real CLI does and the bot relies on, held against
the stand-in run as a process on a moto server: exit codes 0/1/2, log and data streams,
``deploy --revision N`` alone, ``--no-update-service``, a missing service created, ``diff`` of
service and task definition with exit 0, the revisions JSON stream, ``rollback --no-wait``,
``env``/``must_env`` rendering, ``--envfile``, deadlines, and SIGTERM/SIGINT."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.stand_ins import ecspresso_stand_in
from integrations.ecspresso import Ecspresso
from tests.moto_server import MotoServer, moto_fixtures

STANDIN = ecspresso_stand_in()
STAMP = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d"
SERVICE_DEF = {"desiredCount": 1, "launchType": "EC2", "schedulingStrategy": "REPLICA"}

moto_server, moto = moto_fixtures()


@dataclass(frozen=True)
class App:
    """Service ``app`` in cluster ``c1`` running ``app:1`` (image ``repo/app:v1``)."""

    moto: MotoServer
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "ecspresso.yml"

    def ecs(self) -> Any:
        return self.moto.client("ecs")

    def service(self, name: str = "app") -> dict[str, Any]:
        return dict(self.ecs().describe_services(cluster="c1", services=[name])["services"][0])

    def revision(self, name: str = "app") -> str:
        return str(self.service(name)["taskDefinition"]).rsplit("/", 1)[1]

    def run(
        self, *args: str, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STANDIN, *args],
            capture_output=True,
            text=True,
            env=self.env() | env,
            cwd=cwd,
            timeout=60,
            check=False,
        )

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "MLOPS_BOT_PYTHON": sys.executable} | self.moto.env()

    def write(self, name: str, *, service: str = "app", timeout: str = "1m", **extra: Any) -> Path:
        """Another config in the same directory, for ``service``."""
        path = self.root / name
        lines = [
            "region: us-east-1",
            "cluster: c1",
            f"service: {service}",
            "service_definition: ecs-service-def.json",
            "task_definition: ecs-task-def.json",
            f"timeout: {timeout}",
        ]
        path.write_text(
            "\n".join(lines) + "\n" + "".join(f"{k}: {json.dumps(v)}\n" for k, v in extra.items())
        )
        return path


def task_definition(image: str) -> dict[str, Any]:
    api = {"name": "api", "image": image, "essential": True, "memory": 128}
    return {"family": "app", "networkMode": "bridge", "containerDefinitions": [api]}


@pytest.fixture
def app(moto: MotoServer, tmp_path: Path) -> App:
    ecs = moto.client("ecs")
    ecs.create_cluster(clusterName="c1")
    arn = ecs.register_task_definition(**task_definition("repo/app:v1"))["taskDefinition"]
    ecs.create_service(
        cluster="c1", serviceName="app", taskDefinition=arn["taskDefinitionArn"], **SERVICE_DEF
    )
    td = task_definition("repo/app:{{ must_env `TAG` }}")
    (tmp_path / "ecs-task-def.json").write_text(json.dumps(td, indent=2))
    (tmp_path / "ecs-service-def.json").write_text(json.dumps(SERVICE_DEF, indent=2))
    found = App(moto, tmp_path)
    found.write("ecspresso.yml")
    return found


@pytest.fixture
def slow(app: App, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Service ``slow``, whose rollout moto leaves IN_PROGRESS: it never becomes stable."""
    monkeypatch.delenv("MOTO_ECS_SERVICE_RUNNING", raising=False)
    ecs = app.ecs()
    arn = ecs.register_task_definition(**task_definition("repo/app:v1"))["taskDefinition"]
    ecs.create_service(
        cluster="c1", serviceName="slow", taskDefinition=arn["taskDefinitionArn"], **SERVICE_DEF
    )
    monkeypatch.undo()
    return app.write("slow.yml", service="slow", timeout="2s")


def test_deploy_logs_on_stderr_like_ecspresso_and_exits_0(app: App) -> None:
    done = app.run("deploy", f"--config={app.config}", TAG="v2")

    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert all(re.match(rf"{STAMP} (app/c1 |\[INFO\] )", line) for line in lines), lines
    assert f"{lines[0][:19]} [INFO] ecspresso version: v2.4.5" == lines[0]
    assert re.fullmatch(rf"{STAMP} app/c1 Starting deploy", lines[1])
    assert lines[-1].endswith("app/c1 Service is stable now. Completed!")
    assert any(line.endswith("Task definition is registered app:2") for line in lines)
    assert app.revision() == "app:2"


def test_version_prints_on_stdout() -> None:
    done = subprocess.run([STANDIN, "version"], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ecspresso v2.4.5\n", "")


def test_deploy_revision_alone_deploys_that_revision_without_registering(app: App) -> None:
    assert app.run("deploy", f"--config={app.config}", TAG="v2").returncode == 0

    done = app.run("deploy", f"--config={app.config}", "--revision", "1", TAG="v3")

    assert done.returncode == 0, done.stderr
    assert app.revision() == "app:1" and "Registering" not in done.stderr
    assert len(app.ecs().list_task_definitions(familyPrefix="app")["taskDefinitionArns"]) == 2


def test_revision_and_latest_task_definition_are_exclusive(app: App) -> None:
    done = app.run(
        "deploy", f"--config={app.config}", "--revision=1", "--latest-task-definition", TAG="v2"
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].endswith(
        "[ERROR] FAILED. revision and latest-task-definition are exclusive"
    )


def test_no_update_service_keeps_the_service_definition_and_desired_count(app: App) -> None:
    app.ecs().update_service(cluster="c1", service="app", desiredCount=3)

    kept = app.run("deploy", f"--config={app.config}", "--no-update-service", TAG="v2")

    assert kept.returncode == 0, kept.stderr
    assert "desired count: unchanged" in kept.stderr
    assert (app.service()["desiredCount"], app.revision()) == (3, "app:2")
    applied = app.run("deploy", f"--config={app.config}", TAG="v3")
    assert applied.returncode == 0 and app.service()["desiredCount"] == 1


def test_deploy_creates_a_missing_service(app: App) -> None:
    config = app.write("fresh.yml", service="fresh")

    done = app.run("deploy", f"--config={config}", TAG="v2")

    assert done.returncode == 0, done.stderr
    assert "fresh/c1 Service fresh not found. Creating a new service" in done.stderr
    assert app.service("fresh")["status"] == "ACTIVE" and app.revision("fresh") == "app:2"


def test_diff_compares_service_and_task_definition_and_always_exits_0(app: App) -> None:
    same = app.run("diff", f"--config={app.config}", TAG="v1")
    assert (same.returncode, same.stdout) == (0, ""), same.stderr

    (app.root / "ecs-service-def.json").write_text(json.dumps(SERVICE_DEF | {"desiredCount": 2}))
    changed = app.run("diff", f"--config={app.config}", TAG="v2")

    assert changed.returncode == 0, changed.stderr
    headers = [line for line in changed.stdout.splitlines() if line[:4] in ("--- ", "+++ ")]
    assert headers == [
        "--- arn:aws:ecs:us-east-1:123456789012:service/c1/app",
        f"+++ {app.root / 'ecs-service-def.json'}",
        "--- arn:aws:ecs:us-east-1:123456789012:task-definition/app:1",
        f"+++ {app.root / 'ecs-task-def.json'}",
    ]
    assert '-  "desiredCount": 1' in changed.stdout and '+  "desiredCount": 2' in changed.stdout
    assert '+      "image": "repo/app:v2"' in changed.stdout


def test_revisions_json_is_a_stream_of_indented_objects(app: App) -> None:
    assert app.run("deploy", f"--config={app.config}", TAG="v2").returncode == 0

    done = app.run("revisions", f"--config={app.config}", "--output=json", TAG="v2")
    tsv = app.run("revisions", f"--config={app.config}", "--output", "tsv", TAG="v2")

    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        '{\n  "in_use": "",\n  "name": "app:1"\n}\n'
        '{\n  "in_use": "PRIMARY deployment",\n  "name": "app:2"\n}\n'
    )
    assert tsv.stdout == "app:1\t\napp:2\tPRIMARY deployment\n"


def test_rollback_no_wait_needs_no_deregister(app: App) -> None:
    assert app.run("deploy", f"--config={app.config}", TAG="v2").returncode == 0

    refused = app.run("rollback", f"--config={app.config}", "--no-wait", TAG="v2")
    done = app.run(
        "rollback", f"--config={app.config}", "--no-wait", "--no-deregister-task-definition"
    )

    assert refused.returncode == 1
    assert "[ERROR] FAILED. --deregister-task-definition not works with --no-wait" in refused.stderr
    assert done.returncode == 0 and "Service is rolled back." in done.stderr
    assert app.revision() == "app:1"


def test_an_unset_must_env_panics_with_exit_2_before_any_aws_call(app: App) -> None:
    done = app.run("deploy", f"--config={app.config}")

    assert done.returncode == 2
    assert "panic: template attach failed: template: conf:" in done.stderr
    assert "error calling must_env: environment variable TAG is not defined" in done.stderr
    assert "goroutine 1 [running]" in done.stderr and "[ERROR]" not in done.stderr
    assert app.revision() == "app:1"
    assert len(app.ecs().list_task_definitions(familyPrefix="app")["taskDefinitionArns"]) == 1


def test_env_falls_back_to_its_last_argument_and_must_env_accepts_empty(app: App) -> None:
    values = {
        "A": "{{ env `UNSET_A` }}",  # backquotes: a JSON string cannot hold bare quotes
        "B": "{{ env `UNSET_B` `fallback` }}",
        "C": "{{ env `EMPTY_C` `d` }}",
        "D": "{{ env `UNSET_B` `SET_D` `d` }}",
        "E": "{{ must_env `EMPTY_C` }}",
    }
    td = task_definition("repo/app:v1")
    td["containerDefinitions"][0]["environment"] = [
        {"name": k, "value": v} for k, v in values.items()
    ]
    (app.root / "ecs-task-def.json").write_text(json.dumps(td))

    done = app.run("render", f"--config={app.config}", "taskdef", EMPTY_C="", SET_D="x")

    assert done.returncode == 0, done.stderr
    rendered = json.loads(done.stdout)["containerDefinitions"][0]["environment"]
    assert {e["name"]: e["value"] for e in rendered} == {
        "A": "UNSET_A",
        "B": "fallback",
        "C": "d",
        "D": "x",
        "E": "",
    }


def test_envfile_entries_override_the_environment(app: App) -> None:
    envfile = app.root / "deploy.env"
    envfile.write_text("# comment\nTAG=from-file\nexport OTHER='quoted'\n")

    done = app.run(
        "render", "taskdef", f"--config={app.config}", f"--envfile={envfile}", TAG="from-env"
    )

    assert done.returncode == 0, done.stderr
    image = json.loads(done.stdout)["containerDefinitions"][0]["image"]
    assert image == "repo/app:from-file"


def test_render_config_prints_the_config_as_ecspresso_reads_it(app: App) -> None:
    config = app.write("plugged.yml", plugins=[{"name": "external", "config": {"x": 1}}])

    done = app.run("render", "config", f"--config={config}")
    by_default = app.run("render", "config", cwd=app.root)

    assert done.returncode == 0, done.stderr
    assert "cluster: c1\n" in done.stdout and "service: app\n" in done.stdout
    assert "- name: external\n" in done.stdout and "timeout: 1m0s\n" in done.stdout
    assert by_default.returncode == 0 and "service: app\n" in by_default.stdout


def test_the_deadline_ends_a_deploy_with_exit_1(app: App, slow: Path) -> None:
    started = time.monotonic()
    by_flag = app.run("deploy", f"--config={slow}", "--timeout=1500ms", TAG="v2")
    by_config = app.run("deploy", f"--config={slow}", TAG="v2")  # the config's timeout: 2s

    for done in (by_flag, by_config):
        assert done.returncode == 1, done.stderr
        assert done.stderr.splitlines()[-1].endswith("[ERROR] FAILED. context deadline exceeded")
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_waiting_ends_with_interrupted_and_exit_1(
    app: App, slow: Path, sig: signal.Signals
) -> None:
    done = interrupt(app, ["deploy", f"--config={slow}", "--timeout=1m"], {"TAG": "v2"}, sig)
    assert done[0] == 1
    assert done[1].splitlines()[-1].endswith("[WARNING] Interrupted")


def test_sigterm_ends_a_hanging_stand_in_with_interrupted(app: App, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    env = {"MLOPS_ECSPRESSO_STANDIN_MODE": "hang", "MLOPS_ECSPRESSO_STANDIN_PIDFILE": str(pidfile)}
    code, stderr = interrupt(app, ["deploy", f"--config={app.config}"], env, signal.SIGTERM)

    assert code == 1 and stderr.splitlines()[-1].endswith("[WARNING] Interrupted")
    child = int(pidfile.read_text().split()[1])
    assert not Path(f"/proc/{child}").exists()  # killed and reaped by the stand-in


def interrupt(
    app: App, args: list[str], env: dict[str, str], sig: signal.Signals
) -> tuple[int, str]:
    """Starts the stand-in, waits until it waits for the service, sends ``sig``."""
    proc = subprocess.Popen(
        [STANDIN, *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=app.env() | env,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "Waiting for service stable" in line:
            break
    proc.send_signal(sig)
    rest = proc.stderr.read()
    return proc.wait(timeout=20), "".join(seen) + rest


async def test_the_adapters_deadline_lets_ecspresso_time_out_first(app: App, slow: Path) -> None:
    adapter = Ecspresso(STANDIN, base_env=app.moto.env(), deploy_timeout=6, kill_grace=0.5)

    result = await adapter.deploy(str(slow), {"TAG": "v2"}, lambda _: None)

    assert (result.exit_code, result.timed_out) == (1, False)
    assert "context deadline exceeded" in result.output


async def test_the_adapter_reports_exit_2_as_a_config_error(app: App) -> None:
    adapter = Ecspresso(STANDIN, base_env=app.moto.env(), deploy_timeout=20)

    result = await adapter.deploy(str(app.config), {}, lambda _: None)

    assert (result.exit_code, result.config_error, result.ok) == (2, True, False)


async def test_the_adapter_renders_the_config_and_keeps_the_service(app: App) -> None:
    adapter = Ecspresso(STANDIN, base_env=app.moto.env(), deploy_timeout=20, timeout=20)
    app.ecs().update_service(cluster="c1", service="app", desiredCount=2)

    rendered = await adapter.render_config(str(app.config), {})
    result = await adapter.deploy(
        str(app.config), {"TAG": "v2"}, print, revision=1, keep_service=True
    )

    assert "cluster: c1\n" in rendered and "service: app\n" in rendered
    assert result.ok, result.output
    assert (app.service()["desiredCount"], app.revision()) == (2, "app:1")
