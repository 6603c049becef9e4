"""ecspresso configs read from the model's GitLab repository at the run's commit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.config.loading import settings_from_data
from bot.config.settings import Settings
from bot.errors import NotFound, UserInputError
from bot.sandbox.gitlab.server import GitLabStandIn
from bot.sandbox.gitlab.state import StandInProject
from bot.services.deploys.configs import DeployConfigs
from integrations.gitlab import GitLabPipelines

TOKEN = "glpat-test-token"
CONFIG = (
    b"region: us-east-1\ncluster: ml-prod\nservice: fraud-api\n"
    b"task_definition: ecs-task-def.json\nservice_definition: defs/service.json\n"
)


@pytest.fixture
async def gitlab() -> AsyncIterator[GitLabStandIn]:
    files = {
        "deploy/prod/ecspresso.yml": CONFIG,
        "deploy/prod/ecs-task-def.json": b'{"family": "fraud-api"}',
        "deploy/prod/defs/service.json": b'{"desiredCount": 2}',
        "deploy/evil/ecspresso.yml": b"task_definition: ../../secrets.json\n",
    }
    server = GitLabStandIn(token=TOKEN, projects=[StandInProject(path="ml/fraud", files=files)])
    await server.start()
    yield server
    await server.stop()


def settings() -> Settings:
    return settings_from_data(
        {
            "models": {
                "fraud": {
                    "channel": "#ml-fraud",
                    "gitlab_project": "ml/fraud",
                    "deploy": {"source": {"kind": "gitlab", "path": "deploy/{env}"}},
                    "environments": {"prod": {}, "evil": {}},
                }
            }
        }
    )


async def test_the_config_and_the_files_it_names_are_fetched(gitlab: GitLabStandIn) -> None:
    files = GitLabPipelines.from_settings(url=gitlab.url, token=TOKEN, timeout=5)
    configs = DeployConfigs(settings(), files)
    sha = gitlab.state.project("ml/fraud").resolve(None)
    async with configs.checkout("fraud", "prod", sha) as path:
        assert path.read_bytes() == CONFIG
        assert (path.parent / "ecs-task-def.json").read_text() == '{"family": "fraud-api"}'
        assert (path.parent / "defs" / "service.json").read_text() == '{"desiredCount": 2}'
        directory = path.parent
    assert not directory.exists()
    raw = [c.path for c in gitlab.calls if "/repository/files/" in c.path]
    assert raw and all(sha in str(c.query) for c in gitlab.calls if "/repository/files/" in c.path)


async def test_missing_files_and_escapes_are_refused(gitlab: GitLabStandIn) -> None:
    files = GitLabPipelines.from_settings(url=gitlab.url, token=TOKEN, timeout=5)
    configs = DeployConfigs(settings(), files)
    sha = gitlab.state.project("ml/fraud").resolve(None)
    with pytest.raises(UserInputError, match="outside its directory"):
        async with configs.checkout("fraud", "evil", sha):
            pass
    with pytest.raises(NotFound, match=r"has no deploy/prod/ecspresso\.yml at 0000000"):
        async with configs.checkout("fraud", "prod", "0000000000000000000000000000000000000000"):
            pass
