"""ecspresso configs read from a protected branch of the model's GitLab repository (never a
run's commit), through GitLabPipelines against the GitLab stand-in over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.config.loading import settings_from_data
from bot.config.settings import Settings
from bot.errors import Conflict, ExternalError, NotFound, UserInputError
from bot.sandbox.gitlab.server import GitLabStandIn
from bot.sandbox.gitlab.state import StandInProject, fake_sha
from bot.services.deploys.configs import DeployConfigs, image_variables
from integrations.gitlab import GitLabPipelines

TOKEN = "glpat-test-token"
CONFIG = (
    b"region: us-east-1\ncluster: ml-prod\nservice: fraud-api\n"
    b"task_definition: ecs-task-def.json\nservice_definition: defs/service.json\n"
)
HOSTILE = b'region: us-east-1\ntask_definition: {{ secretsmanager "prod/db" }}.json\n'
FEATURE = fake_sha("ml/fraud@feature")
RELEASE = fake_sha("ml/fraud@release")


@pytest.fixture
async def gitlab() -> AsyncIterator[GitLabStandIn]:
    files = {
        "deploy/prod/ecspresso.yml": CONFIG,
        "deploy/prod/ecs-task-def.json": b'{"family": "fraud-api"}',
        "deploy/prod/defs/service.json": b'{"desiredCount": 2}',
        "deploy/evil/ecspresso.yml": b"task_definition: ../../secrets.json\n",
    }
    project = StandInProject(
        path="ml/fraud",
        files=files,
        branches={"feature": FEATURE, "release": RELEASE},
        commit_files={FEATURE: {"deploy/prod/ecspresso.yml": HOSTILE}},
        protected=["main", "rel*"],
    )
    server = GitLabStandIn(token=TOKEN, projects=[project])
    await server.start()
    yield server
    await server.stop()


def settings(**source: Any) -> Settings:
    return settings_from_data(
        {
            "models": {
                "fraud": {
                    "channel": "#ml-fraud",
                    "gitlab_project": "ml/fraud",
                    "deploy": {"source": {"kind": "gitlab", "path": "deploy/{env}", **source}},
                    "environments": {"prod": {}, "evil": {}},
                }
            }
        }
    )


def configs(gitlab: GitLabStandIn, **source: Any) -> DeployConfigs:
    files = GitLabPipelines.from_settings(url=gitlab.url, token=TOKEN, timeout=5)
    return DeployConfigs(settings(**source), files)


async def test_the_config_and_its_files_come_from_the_protected_default_branch(
    gitlab: GitLabStandIn,
) -> None:
    main = gitlab.state.project("ml/fraud").resolve("main")
    assert main is not None
    async with configs(gitlab).checkout("fraud", "prod") as path:
        assert path.read_bytes() == CONFIG
        assert (path.parent / "ecs-task-def.json").read_text() == '{"family": "fraud-api"}'
        assert (path.parent / "defs" / "service.json").read_text() == '{"desiredCount": 2}'
        directory = path.parent
    assert not directory.exists()
    # protection is checked through the API before any file is read; all files at one commit
    branch = gitlab.calls_to("GET", r"/repository/branches/main$")
    reads = gitlab.calls_to("GET", r"/repository/files/")
    assert branch and reads and branch[0].at <= reads[0].at
    assert {c.query["ref"] for c in reads} == {main}


async def test_a_configured_ref_matching_a_wildcard_rule_is_used(gitlab: GitLabStandIn) -> None:
    gitlab.set_file("ml/fraud", "deploy/prod/ecspresso.yml", CONFIG + b"# release\n", at=RELEASE)
    async with configs(gitlab, ref="release").checkout("fraud", "prod") as path:
        assert path.read_bytes().endswith(b"# release\n")
    assert {c.query["ref"] for c in gitlab.calls_to("GET", r"/repository/files/")} == {RELEASE}


async def test_an_unprotected_branch_is_refused_before_any_file_is_read(
    gitlab: GitLabStandIn,
) -> None:
    with pytest.raises(Conflict, match="configured branch `feature`: GitLab does not protect"):
        async with configs(gitlab, ref="feature").checkout("fraud", "prod"):
            pass
    gitlab.protect("ml/fraud")  # nothing protected, not even the default branch
    with pytest.raises(Conflict, match=r"default branch `main`.*Protect the branch in GitLab"):
        async with configs(gitlab).checkout("fraud", "prod"):
            pass
    assert gitlab.calls_to("GET", r"/repository/files/") == []


async def test_missing_branches_files_and_escapes_are_refused(gitlab: GitLabStandIn) -> None:
    with pytest.raises(UserInputError, match="outside its directory"):
        async with configs(gitlab).checkout("fraud", "evil"):
            pass
    with pytest.raises(NotFound, match="ml/fraud has no branch gone"):
        async with configs(gitlab, ref="gone").checkout("fraud", "prod"):
            pass
    gitlab.set_file("ml/fraud", "deploy/prod/ecspresso.yml", CONFIG, at="main")
    del gitlab.state.project("ml/fraud").files["deploy/prod/ecs-task-def.json"]
    with pytest.raises(NotFound, match=r"no deploy/prod/ecs-task-def\.json on its protected"):
        async with configs(gitlab).checkout("fraud", "prod"):
            pass


async def test_without_gitlab_the_source_says_what_to_configure() -> None:
    with pytest.raises(ExternalError, match=r"`gitlab\.token`.*kind: local"):
        async with DeployConfigs(settings(), None).checkout("fraud", "prod"):
            pass


def test_a_digest_deploy_has_no_image_tag() -> None:
    digest = "sha256:" + "a" * 64
    assert image_variables(f"fraud@{digest}", digest, "fraud") == {
        "IMAGE_DIGEST": digest,
        "IMAGE_REPOSITORY": "fraud",
        "IMAGE": f"fraud@{digest}",
    }
    assert image_variables("v1", digest, "fraud")["IMAGE_TAG"] == "v1"
