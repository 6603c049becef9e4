"""/deploy failures and verification, through signed Slack requests, moto's ECS (with the
fixtures' scheduler starting the services' tasks) and the ecspresso stand-in as a subprocess:
a rollback happens only when ECS changed, changes only the task definition and is verified;
verification reads the digest the primary deployment's tasks run."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.domain.deploys import DeployState
from bot.sandbox.console import Console
from bot.sandbox.fixtures.deploys import add_sidecar
from bot.sandbox.runner import Sandbox, running_sandbox, sample_config
from integrations.aws.ecs import EcsServices
from tests.helpers import eventually
from tests.scenario.test_deploy import card_of, deploy_state, on_stg, trained

SIDECAR = "999999999999.dkr.ecr.us-east-1.amazonaws.com/datadog-agent:7"


@pytest.fixture
async def quick(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, Console]]:
    """The sandbox with ecspresso's timeout cut to 10 s (for the hang case; the rollback
    after it runs under the same limit)."""
    data = yaml.safe_load(sample_config().read_text())
    data["ecspresso"] = {"timeout_seconds": 10, "verify_seconds": 15}
    config = tmp_path / "bot.yaml"
    config.write_text(yaml.safe_dump(data))
    async with running_sandbox(config) as sandbox, aiohttp.ClientSession() as http:
        yield sandbox, sandbox.console(io.StringIO(), http)


def ecs(sandbox: Sandbox) -> Any:
    assert sandbox.aws is not None
    return sandbox.aws.client("ecs")


def services(sandbox: Sandbox) -> EcsServices:
    assert sandbox.aws is not None
    return EcsServices(sandbox.aws.client("ecs"), sandbox.aws.client("ecr"))


def service(sandbox: Sandbox, env: str = "stg") -> dict[str, Any]:
    found = ecs(sandbox).describe_services(cluster=f"ml-{env}", services=["fraud-api"])
    return dict(found["services"][0])


def config_dir(sandbox: Sandbox, env: str = "stg") -> Path:
    return sandbox.stand_ins.deploy_root / "fraud" / env


def edit_json(path: Path, **changes: Any) -> None:
    path.write_text(json.dumps(json.loads(path.read_text()) | changes, indent=2))


async def failed_with(sandbox: Sandbox, deploy_id: int) -> str:
    """The failed deploy's card, once the requester was told in the thread."""
    await deploy_state(sandbox, deploy_id, DeployState.FAILED)
    await sandbox.slack.wait_for(
        lambda: any(
            m.thread_ts and f"#{deploy_id} to fraud/stg failed:" in m.text
            for m in sandbox.slack.messages
        ),
        timeout=10,
    )
    return plain(card_of(sandbox, deploy_id))


def plain(text: str) -> str:
    """The text without the zero-width joiners that keep ``_`` and ``*`` from being mrkdwn."""
    return text.replace("\\u200d", "").replace("\u200d", "")


def mention(sandbox: Sandbox, deploy_id: int) -> str:
    texts = [m.text for m in sandbox.slack.messages if m.thread_ts and f"#{deploy_id} to" in m.text]
    return plain(texts[-1])


async def test_a_template_error_is_a_config_error_with_no_rollback(
    console: Console, sandbox: Sandbox
) -> None:
    await trained(sandbox, console)
    task_def = config_dir(sandbox) / "ecs-task-def.json"
    td = json.loads(task_def.read_text())
    td["containerDefinitions"][0]["environment"].append(
        {"name": "FLAG", "value": "{{ must_env `FEATURE_FLAG` }}"}
    )
    task_def.write_text(json.dumps(td))

    await console.execute("/deploy fraud stg")

    card = await failed_with(sandbox, 1)
    assert "a template/config error (e.g. an unset must_env) before any AWS call" in card
    assert "exited with 2" in card and "FEATURE_FLAG" in card
    assert "ECS unchanged (revision 1), nothing rolled back" in card
    assert "rolled back and verified" not in card
    assert "nothing rolled back" in mention(sandbox, 1)
    assert service(sandbox)["taskDefinition"].endswith(":1")
    families = ecs(sandbox).list_task_definitions(familyPrefix="fraud-api-stg")
    assert len(families["taskDefinitionArns"]) == 1  # nothing registered either


async def test_a_failure_after_ecs_changed_rolls_back_the_task_definition_only(
    quick: tuple[Sandbox, Console],
) -> None:
    sandbox, console = quick
    await trained(sandbox, console)
    # the operator's service definition now asks for 2 tasks: a rollback must not apply it
    edit_json(config_dir(sandbox) / "ecs-service-def.json", desiredCount=2)
    await console.execute("ecspresso hang@deploy")  # the rollback (--revision) is not hung
    await console.execute("/deploy fraud stg")
    await sandbox.slack.wait_for(
        lambda: any(m.thread_ts and "ecspresso" in m.text for m in sandbox.slack.messages),
        timeout=10,
    )
    # what ecspresso did before it wedged: a new revision (the run's image), the service on it
    client = ecs(sandbox)
    td = client.describe_task_definition(taskDefinition="fraud-api-stg:1")["taskDefinition"]
    d = await sandbox.bot.store.deployments.get(1)
    assert d is not None
    api = td["containerDefinitions"][0]
    image = api["image"].split("@")[0] + "@" + d.digest
    new = client.register_task_definition(
        family=td["family"],
        networkMode=td["networkMode"],
        requiresCompatibilities=td["requiresCompatibilities"],
        containerDefinitions=[{**api, "image": image}],
    )["taskDefinition"]["taskDefinitionArn"]
    client.update_service(cluster="ml-stg", service="fraud-api", taskDefinition=new)

    card = await failed_with(sandbox, 1)

    assert "ecspresso timed out after 10s" in card
    assert "rolled back and verified on revision 1" in card
    assert "rolled back and verified on revision 1" in mention(sandbox, 1)
    after = service(sandbox)
    assert after["taskDefinition"].endswith(":1") and after["desiredCount"] == 1
    state = await services(sandbox).state("ml-stg", "fraud-api")
    assert state.revision == 1 and state.tasks == 1


async def test_a_sidecar_from_another_repository_does_not_fail_verification(
    console: Console, sandbox: Sandbox
) -> None:
    add_sidecar(config_dir(sandbox) / "ecspresso.yml", SIDECAR)

    await on_stg(sandbox, console)

    assert "revision 2 verified on ECS" in card_of(sandbox, 1)
    td = ecs(sandbox).describe_task_definition(taskDefinition=service(sandbox)["taskDefinition"])
    assert [c["image"] for c in td["taskDefinition"]["containerDefinitions"]][1] == SIDECAR


async def test_a_lying_ecspresso_fails_verification_and_nothing_is_rolled_back(
    console: Console, sandbox: Sandbox
) -> None:
    await trained(sandbox, console)
    await console.execute("ecspresso lie")

    await console.execute("/deploy fraud stg")

    card = await failed_with(sandbox, 1)
    assert "ECS runs sha256:" in card and "(revision 1), not the requested sha256:" in card
    assert "ECS unchanged (revision 1), nothing rolled back" in card
    assert service(sandbox)["taskDefinition"].endswith(":1")


async def test_a_requested_rollback_keeps_the_service_definition_and_is_verified(
    console: Console, sandbox: Sandbox
) -> None:
    await on_stg(sandbox, console)  # revision 2
    await console.execute("/deploy fraud stg image=v1")
    await deploy_state(sandbox, 2, DeployState.SUCCEEDED)  # revision 3
    edit_json(config_dir(sandbox) / "ecs-service-def.json", desiredCount=2)

    await console.execute("/deploy fraud rollback stg to=1")

    await deploy_state(sandbox, 3, DeployState.SUCCEEDED)
    assert "revision 2 verified on ECS" in card_of(sandbox, 3)
    after = service(sandbox)
    assert after["taskDefinition"].endswith(":2") and after["desiredCount"] == 1

    async def tasks_follow() -> bool:
        state = await services(sandbox).state("ml-stg", "fraud-api")
        first = await sandbox.bot.store.deployments.get(1)
        return first is not None and [c.digest for c in state.containers] == [first.digest]

    await eventually(tasks_follow)
