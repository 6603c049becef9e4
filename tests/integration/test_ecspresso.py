"""The Ecspresso runner driving the ecspresso stand-in against a real moto server: deploys,
revisions, rollbacks and diffs change (or not) what ECS itself reports; injected failures,
hangs and lies come back as ecspresso's would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.sandbox.fixtures import deploys as deploy_fixtures
from bot.sandbox.fixtures.deploys import DeployTarget
from bot.sandbox.stand_ins import ecspresso_stand_in
from integrations.aws.ecs import EcsServices
from integrations.ecspresso import Ecspresso
from tests.moto_server import MotoServer, moto_fixtures

STANDIN = ecspresso_stand_in()
MODE = "MLOPS_ECSPRESSO_STANDIN_MODE"

moto_server, moto = moto_fixtures()


@pytest.fixture
def target(moto: MotoServer, tmp_path: Path) -> DeployTarget:
    return deploy_fixtures.create_target(
        moto.client("ecr"), moto.client("ecs"), tmp_path, model="fraud", env="stg"
    )


@pytest.fixture
def services(moto: MotoServer) -> EcsServices:
    return EcsServices(moto.client("ecs"), moto.client("ecr"))


@pytest.fixture
def ecspresso(moto: MotoServer) -> Ecspresso:
    return Ecspresso(STANDIN, base_env=moto.env(), deploy_timeout=20, timeout=20)


async def deploy(ecspresso: Ecspresso, target: DeployTarget, tag: str, **env: str) -> list[str]:
    lines: list[str] = []
    result = await ecspresso.deploy(str(target.config), target.variables(tag) | env, lines.append)
    assert result.ok, result.output
    return lines


async def test_deploy_registers_a_revision_and_logs_like_ecspresso(
    ecspresso: Ecspresso, services: EcsServices, target: DeployTarget
) -> None:
    lines = await deploy(ecspresso, target, "v2")

    assert (await services.state("ml-stg", "fraud-api")).revision == 2
    assert lines[0].endswith(" [INFO] ecspresso version: v2.4.5")
    assert lines[1].endswith(" fraud-api/ml-stg Starting deploy")
    assert lines[1][:19].count("/") == 2 and lines[1][4] == "/"  # 2025/01/01 12:00:00
    assert any(line.endswith("Task definition is registered fraud-api-stg:2") for line in lines)
    assert lines[-1].endswith("Service is stable now. Completed!")


async def test_deploy_of_an_older_revision_switches_back_to_it(
    ecspresso: Ecspresso, services: EcsServices, target: DeployTarget
) -> None:
    await deploy(ecspresso, target, "v2")

    result = await ecspresso.deploy(str(target.config), target.variables("v2"), print, revision=1)

    assert result.ok, result.output
    state = await services.state("ml-stg", "fraud-api")
    assert (state.revision, state.images) == (1, (target.image("v1"),))
    assert "Registering" not in result.output


async def test_rollback_keeps_the_rolled_back_task_definition(
    ecspresso: Ecspresso, services: EcsServices, target: DeployTarget, moto: MotoServer
) -> None:
    await deploy(ecspresso, target, "v2")

    result = await ecspresso.rollback(str(target.config), target.variables("v2"), print)

    assert result.ok, result.output
    assert "Rolling back to fraud-api-stg:1" in result.output
    assert (await services.state("ml-stg", "fraud-api")).revision == 1
    described = moto.client("ecs").describe_task_definition(taskDefinition="fraud-api-stg:2")
    assert described["taskDefinition"]["status"] == "ACTIVE"
    revisions = await ecspresso.revisions(str(target.config), target.variables("v2"))
    assert revisions == [
        {"in_use": "PRIMARY deployment", "name": "fraud-api-stg:1"},
        {"in_use": "", "name": "fraud-api-stg:2"},
    ]


async def test_a_plain_rollback_deregisters_and_that_revision_cannot_come_back(
    ecspresso: Ecspresso, services: EcsServices, target: DeployTarget
) -> None:
    config = str(target.config)
    await deploy(ecspresso, target, "v2")

    plain = await ecspresso.run(
        ["rollback", "--config", config], target.variables("v2"), print, time_limit=20
    )
    again = await ecspresso.deploy(config, target.variables("v2"), print, revision=2)

    assert plain.ok and "fraud-api-stg:2 was deregistered successfully" in plain.output
    assert again.exit_code == 1 and "fraud-api-stg:2 is INACTIVE" in again.output
    assert (await services.state("ml-stg", "fraud-api")).revision == 1


async def test_diff_is_empty_unless_the_image_changes(
    ecspresso: Ecspresso, target: DeployTarget
) -> None:
    config = str(target.config)

    assert await ecspresso.diff(config, target.variables("v1")) == ""
    changed = await ecspresso.diff(config, target.variables("v2"))

    assert changed.startswith("--- arn:aws:ecs:")
    assert f'-      "image": "{target.image("v1")}"' in changed
    assert f'+      "image": "{target.image("v2")}"' in changed


async def test_a_failing_deploy_exits_non_zero_and_streams_its_output(
    ecspresso: Ecspresso, services: EcsServices, target: DeployTarget
) -> None:
    lines: list[str] = []

    result = await ecspresso.deploy(
        str(target.config), target.variables("v2") | {MODE: "fail"}, lines.append
    )

    assert (result.exit_code, result.timed_out, result.ok) == (1, False, False)
    assert "[ERROR] FAILED." in lines[-1] and lines[-1] in result.output
    assert (await services.state("ml-stg", "fraud-api")).revision == 1


async def test_a_missing_must_env_variable_panics_with_exit_2_like_ecspresso(
    ecspresso: Ecspresso, services: EcsServices, target: DeployTarget
) -> None:
    env = target.variables("v2")
    del env["IMAGE_DIGEST"]

    result = await ecspresso.deploy(str(target.config), env, print)

    assert (result.exit_code, result.config_error, result.timed_out) == (2, True, False)
    assert "panic: template attach failed" in result.output
    assert "environment variable IMAGE_DIGEST is not defined" in result.output
    assert (await services.state("ml-stg", "fraud-api")).revision == 1


async def test_a_hanging_deploy_is_killed_with_its_children(
    moto: MotoServer, target: DeployTarget, tmp_path: Path
) -> None:
    ecspresso = Ecspresso(STANDIN, base_env=moto.env(), deploy_timeout=2.5, kill_grace=0.2)
    pidfile = tmp_path / "pids"
    lines: list[str] = []
    env = {MODE: "hang", "MLOPS_ECSPRESSO_STANDIN_PIDFILE": str(pidfile)}

    result = await ecspresso.deploy(str(target.config), env, lines.append)

    assert (result.exit_code, result.timed_out, result.ok) == (None, True, False)
    assert any("Starting deploy" in line for line in lines)
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2 and not [pid for pid in pids if alive(pid)]


async def test_a_lying_deploy_exits_zero_but_ecs_disagrees(
    ecspresso: Ecspresso, services: EcsServices, target: DeployTarget
) -> None:
    lines = await deploy(ecspresso, target, "v2", **{MODE: "lie"})

    assert lines[-1].endswith("Service is stable now. Completed!")
    state = await services.state("ml-stg", "fraud-api")
    assert (state.revision, state.images) == (1, (target.image("v1"),))


async def test_a_mode_can_target_one_subcommand_through_a_control_file(
    ecspresso: Ecspresso, services: EcsServices, target: DeployTarget, tmp_path: Path
) -> None:
    control = tmp_path / "control"
    control.write_text("fail@deploy\n")
    env = target.variables("v2") | {"MLOPS_ECSPRESSO_STANDIN_CONTROL": str(control)}
    await deploy(ecspresso, target, "v2")

    failed = await ecspresso.deploy(str(target.config), env, print)
    rolled_back = await ecspresso.rollback(str(target.config), env, print)

    assert (failed.exit_code, rolled_back.exit_code) == (1, 0)
    assert (await services.state("ml-stg", "fraud-api")).revision == 1
    control.write_text("ok\n")
    assert (await ecspresso.deploy(str(target.config), env, print)).ok
    assert (await services.state("ml-stg", "fraud-api")).revision == 3


async def test_the_version_check_accepts_2_4_5_and_rejects_2_3_0(moto: MotoServer) -> None:
    assert await Ecspresso(STANDIN).check_version() == "ecspresso v2.4.5"

    old = Ecspresso(STANDIN, base_env={MODE: "old-version"})
    with pytest.raises(ConfigError, match=r"is v2\.3\.0; the bot needs >= v2\.4\.0"):
        await old.check_version()
    with pytest.raises(ConfigError, match="cannot be run"):
        await Ecspresso("/nonexistent/ecspresso").check_version()


async def test_the_version_check_rejects_v3(tmp_path: Path) -> None:
    v3 = tmp_path / "ecspresso"
    v3.write_text("#!/bin/sh\necho 'ecspresso v3.0.1'\n")
    v3.chmod(0o755)
    with pytest.raises(ConfigError, match=r"is v3\.0\.1; the bot supports >= v2\.4\.0 and < v3"):
        await Ecspresso(str(v3)).check_version()


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie left for an init that does not reap counts as ended."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")
