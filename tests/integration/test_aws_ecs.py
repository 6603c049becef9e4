"""EcrRegistry and EcsServices against a real moto server, with deploys made by the ecspresso
stand-in through the Ecspresso runner (no mocks). moto starts no tasks for services: the
fixtures' Scheduler plays ECS's scheduler through the ECS API (see bot/sandbox/fixtures)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from bot.errors import NotFound
from bot.sandbox.fixtures import deploys as deploy_fixtures
from bot.sandbox.fixtures.deploys import DeployTarget, Scheduler
from bot.sandbox.stand_ins import ecspresso_stand_in
from integrations.aws.ecs import EcrRegistry, EcsServices
from integrations.ecspresso import Ecspresso
from tests.moto_server import MotoServer, moto_fixtures

STANDIN = ecspresso_stand_in()

moto_server, moto = moto_fixtures()


@pytest.fixture
def target(moto: MotoServer, tmp_path: Path) -> DeployTarget:
    return deploy_fixtures.create_target(
        moto.client("ecr"), moto.client("ecs"), tmp_path, model="fraud", env="stg"
    )


@pytest.fixture
def services(moto: MotoServer) -> EcsServices:
    return EcsServices(moto.client("ecs"), moto.client("ecr"))


async def test_a_tag_resolves_to_the_digest_ecr_stores(
    moto: MotoServer, target: DeployTarget
) -> None:
    registry = EcrRegistry(moto.client("ecr"))

    digest = await registry.digest("fraud", "v2")

    assert digest == target.digests["v2"] != target.digests["v1"]
    assert digest.startswith("sha256:") and len(digest) == 71


async def test_a_missing_tag_or_repository_is_not_found(
    moto: MotoServer, target: DeployTarget
) -> None:
    registry = EcrRegistry(moto.client("ecr"))

    with pytest.raises(NotFound, match="fraud:v9"):
        await registry.digest("fraud", "v9")
    with pytest.raises(NotFound, match="churn:v1"):
        await registry.digest("churn", "v1")


async def test_the_state_of_a_fresh_service(services: EcsServices, target: DeployTarget) -> None:
    state = await services.state("ml-stg", "fraud-api")

    assert state.task_definition.endswith(":task-definition/fraud-api-stg:1")
    assert state.revision == 1
    assert state.images == (target.image("v1"),)
    assert (state.rollout_state, state.running, state.desired, state.deployments) == (
        "COMPLETED",
        1,
        1,
        1,
    )
    assert state.tasks == 1 and len(state.deployment_ids) == 1
    (container,) = state.containers
    assert (container.name, container.image) == ("api", target.image("v1"))
    assert container.digest == target.digests["v1"] and ":task/ml-stg/" in container.task


async def test_the_newest_registration_of_a_family_is_found_from_any_of_its_revisions(
    moto: MotoServer, services: EcsServices, target: DeployTarget
) -> None:
    client = moto.client("ecs")
    first = client.describe_task_definition(taskDefinition="fraud-api-stg:1")["taskDefinition"]
    api = {**first["containerDefinitions"][0], "image": target.image("v2")}
    client.register_task_definition(
        family="fraud-api-stg",
        networkMode=first["networkMode"],
        requiresCompatibilities=first["requiresCompatibilities"],
        containerDefinitions=[api],
    )

    newest = await services.newest_registration(first["taskDefinitionArn"])

    assert newest.revision == 2 and newest.images == (target.image("v2"),)
    assert (await services.image_digests(newest.images)) == (target.digests["v2"],)


async def test_a_missing_service_or_cluster_is_not_found(
    services: EcsServices, target: DeployTarget
) -> None:
    with pytest.raises(NotFound, match="churn-api does not exist in cluster ml-stg"):
        await services.state("ml-stg", "churn-api")
    with pytest.raises(NotFound, match="cluster ml-prod"):
        await services.state("ml-prod", "fraud-api")


async def test_image_digests_read_pins_and_resolve_ecr_tags(
    services: EcsServices, target: DeployTarget
) -> None:
    uri = target.repository_uri
    elsewhere = uri.replace("us-east-1", "eu-west-1")

    digests = await services.image_digests(
        (target.image("v1"), f"{uri}:v2", f"{uri}:v9", "nginx:1.25", f"{elsewhere}:v2")
    )

    assert digests == (target.digests["v1"], target.digests["v2"], "", "", "")


async def test_a_deploy_by_the_standin_changes_what_ecs_runs(
    moto: MotoServer, services: EcsServices, target: DeployTarget
) -> None:
    before = await services.state("ml-stg", "fraud-api")
    lines: list[str] = []

    result = await Ecspresso(STANDIN, base_env=moto.env()).deploy(
        str(target.config), target.variables("v2"), lines.append
    )

    assert result.ok, result.output
    after = await services.state("ml-stg", "fraud-api")
    assert (before.revision, after.revision) == (1, 2) and after.changed_since(before)
    assert await services.image_digests(after.images) == (target.digests["v2"],)
    assert after.rollout_state == "COMPLETED" and after.running == after.desired == 1
    assert any("Service is stable now. Completed!" in line for line in lines)
    Scheduler(moto.client("ecs")).reconcile("ml-stg", "fraud-api")  # ECS replaces the tasks
    replaced = await services.state("ml-stg", "fraud-api")
    assert replaced.tasks == 1
    assert [c.digest for c in replaced.containers] == [target.digests["v2"]]


async def test_only_running_tasks_of_the_primary_deployment_count(
    moto: MotoServer, services: EcsServices, target: DeployTarget
) -> None:
    ecs = moto.client("ecs")
    before = await services.state("ml-stg", "fraud-api")
    (primary,) = before.deployment_ids
    td = ecs.describe_task_definition(taskDefinition="fraud-api-stg:1")["taskDefinition"]
    fields = ("family", "networkMode", "requiresCompatibilities", "containerDefinitions")
    v2 = {k: td[k] for k in fields}
    v2["containerDefinitions"] = [{**td["containerDefinitions"][0], "image": target.image("v2")}]
    arn = ecs.register_task_definition(**v2)["taskDefinition"]["taskDefinitionArn"]
    # an old deployment's task on another image, a draining task, a stopped one: none counts
    ecs.run_task(cluster="ml-stg", taskDefinition=arn, startedBy="ecs-svc/0000000000000000001")
    ecs.run_task(cluster="ml-stg", taskDefinition=arn, startedBy=primary)
    stopped = ecs.run_task(cluster="ml-stg", taskDefinition="fraud-api-stg:1", startedBy=primary)
    ecs.stop_task(cluster="ml-stg", task=stopped["tasks"][0]["taskArn"], reason="test")

    state = await services.state("ml-stg", "fraud-api")

    assert state.tasks == 1 and not state.changed_since(before)
    assert [c.digest for c in state.containers] == [target.digests["v1"]]


async def test_the_state_needs_no_ecr_so_a_sidecar_repository_cannot_break_it(
    moto: MotoServer, target: DeployTarget
) -> None:
    unreachable = boto3.client(
        "ecr",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    services = EcsServices(moto.client("ecs"), unreachable)

    state = await services.state("ml-stg", "fraud-api")

    assert [c.digest for c in state.containers] == [target.digests["v1"]]
