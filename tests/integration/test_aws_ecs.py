"""EcrRegistry and EcsServices against a real moto server, with deploys made by the ecspresso
stand-in through the Ecspresso runner (no mocks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import NotFound
from bot.sandbox.fixtures import deploys as deploy_fixtures
from bot.sandbox.fixtures.deploys import DeployTarget
from integrations.aws.ecs import EcrRegistry, EcsServices
from integrations.ecspresso import Ecspresso
from tests.moto_server import MotoServer, moto_fixtures

STANDIN = str(Path(deploy_fixtures.__file__).parent / "bin" / "ecspresso")

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
    assert (before.revision, after.revision) == (1, 2)
    assert await services.image_digests(after.images) == (target.digests["v2"],)
    assert after.rollout_state == "COMPLETED" and after.running == after.desired == 1
    assert any("Service is stable now. Completed!" in line for line in lines)
