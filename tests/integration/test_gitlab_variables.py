"""GitLab's pipeline-variable restriction (``ci_pipeline_variables_minimum_override_role``): the
stand-in refuses as GitLab does, the adapter turns the refusal into the setting to change, and
`mlops-bot check-config` reads each model's project first. All over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tenacity import wait_none

from bot.errors import Conflict
from bot.sandbox.gitlab.server import GitLabStandIn, StandInProject
from bot.sandbox.gitlab.state import DEVELOPER, MAINTAINER, OWNER
from integrations.gitlab import GitLabPipelines

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "glpat-variables-secret"
TRIGGER = "glptt-variables-trigger"
REFUSED = {"message": {"base": ["Insufficient permissions to set pipeline variables"]}}
VARIABLES = {"MLOPS_RUN_ID": "1", "HP_LR": "0.01"}


@pytest.fixture
async def stand_in() -> AsyncIterator[GitLabStandIn]:
    server = GitLabStandIn(
        token=TOKEN,
        projects=[
            StandInProject("ml/fraud"),
            StandInProject("ml/churn", trigger_tokens=[TRIGGER]),
        ],
    )
    await server.start()
    yield server
    await server.stop()


async def post(stand_in: GitLabStandIn, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(headers={"PRIVATE-TOKEN": TOKEN}) as session,
        session.post(f"{stand_in.url}/api/v4/projects/{path}", json=body) as response,
    ):
        return response.status, await response.json()


async def get_project(stand_in: GitLabStandIn, project: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(headers={"PRIVATE-TOKEN": TOKEN}) as session,
        session.get(f"{stand_in.url}/api/v4/projects/{project}") as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


@pytest.mark.parametrize(
    ("role", "level", "allowed"),
    [
        ("no_one_allowed", OWNER, False),
        ("owner", MAINTAINER, False),
        ("owner", OWNER, True),
        ("maintainer", DEVELOPER, False),
        ("maintainer", MAINTAINER, True),
        ("developer", DEVELOPER, True),
    ],
)
async def test_the_stand_in_refuses_variables_below_the_minimum_role(
    stand_in: GitLabStandIn, role: str, level: int, allowed: bool
) -> None:
    stand_in.restrict_variables("ml/fraud", role)
    stand_in.set_access_level(level)
    variables = [{"key": k, "value": v} for k, v in VARIABLES.items()]
    status, body = await post(
        stand_in, "ml%2Ffraud/pipeline", {"ref": "main", "variables": variables}
    )
    if allowed:
        assert status == 201 and body["status"] == "created"
    else:
        assert (status, body) == (400, REFUSED)
    plain, _ = await post(stand_in, "ml%2Ffraud/pipeline", {"ref": "main"})
    assert plain == 201  # the setting limits variables, not pipelines
    stand_in.restrict_variables("ml/fraud", role, restrict=False)
    unrestricted, _ = await post(
        stand_in, "ml%2Ffraud/pipeline", {"ref": "main", "variables": variables}
    )
    assert unrestricted == 201  # restrict_user_defined_variables off: the role is not read


async def test_trigger_tokens_are_held_to_their_owners_role(stand_in: GitLabStandIn) -> None:
    stand_in.restrict_variables("ml/churn", "owner")
    body = {"ref": "main", "token": TRIGGER, "variables": VARIABLES}
    assert await post(stand_in, "ml%2Fchurn/trigger/pipeline", body) == (400, REFUSED)
    stand_in.set_access_level(OWNER)
    status, _ = await post(stand_in, "ml%2Fchurn/trigger/pipeline", body)
    assert status == 201


async def test_only_maintainers_see_the_setting(stand_in: GitLabStandIn) -> None:
    stand_in.restrict_variables("ml/fraud", "no_one_allowed")
    shown = await get_project(stand_in, "ml%2Ffraud")
    assert shown["ci_pipeline_variables_minimum_override_role"] == "no_one_allowed"
    assert shown["restrict_user_defined_variables"] is True
    assert shown["permissions"]["project_access"]["access_level"] == MAINTAINER
    stand_in.set_access_level(DEVELOPER)
    hidden = await get_project(stand_in, "ml%2Ffraud")
    assert "ci_pipeline_variables_minimum_override_role" not in hidden
    assert hidden["permissions"]["project_access"]["access_level"] == DEVELOPER


async def test_a_refused_train_names_the_setting_and_the_role(stand_in: GitLabStandIn) -> None:
    pipelines = GitLabPipelines.from_settings(stand_in.url, TOKEN, 2.0, wait=wait_none())
    stand_in.restrict_variables("ml/fraud", "no_one_allowed")
    with pytest.raises(Conflict) as refused:
        await pipelines.create("ml/fraud", "main", VARIABLES)
    text = str(refused.value)
    assert "ci_pipeline_variables_minimum_override_role" in text and "no_one_allowed" in text
    assert "set it to maintainer (the bot's role) or lower" in text
    assert "Insufficient permissions" not in text and TOKEN not in text

    stand_in.restrict_variables("ml/fraud", "owner")
    with pytest.raises(Conflict) as below:
        await pipelines.create("ml/fraud", "main", VARIABLES)
    assert "lets only Owners and up" in str(below.value)
    assert "the bot's token user is Maintainer: give it the Owner role" in str(below.value)
    assert stand_in.pipelines("ml/fraud") == []


async def test_a_refusal_the_token_cannot_explain_still_names_the_setting(
    stand_in: GitLabStandIn,
) -> None:
    """A Developer's token cannot read the setting: the message says where it is anyway."""
    pipelines = GitLabPipelines.from_settings(stand_in.url, TOKEN, 2.0, wait=wait_none())
    stand_in.restrict_variables("ml/fraud", "maintainer")
    stand_in.set_access_level(DEVELOPER)
    with pytest.raises(Conflict) as refused:
        await pipelines.create("ml/fraud", "main", VARIABLES)
    text = str(refused.value)
    assert "ci_pipeline_variables_minimum_override_role" in text
    assert "Minimum role to use pipeline variables" in text and "check-config" in text


def config_file(tmp_path: Path, url: str) -> Path:
    models = "".join(
        f"""
  {name}:
    channel: "#ml-{name}"
    gitlab_project: ml/{name}
    training:
      backend: gitlab
"""
        for name in ("fraud", "churn")
    )
    path = tmp_path / "bot.yaml"
    path.write_text(f"gitlab:\n  url: {url}\n  timeout_seconds: 5\nmodels:{models}")
    return path


async def check_config(config: Path, token: str | None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MLOPS_BOT_"))}
    env.pop("GITLAB_TOKEN", None)
    env |= {"GITLAB_TOKEN": token} if token else {}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(config),
        "check-config",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_check_config_reports_a_project_that_would_refuse_the_variables(
    stand_in: GitLabStandIn, tmp_path: Path
) -> None:
    stand_in.restrict_variables("ml/fraud", "no_one_allowed")
    stand_in.restrict_variables("ml/churn", "maintainer")  # the bot is Maintainer: fine
    code, out, err = await check_config(config_file(tmp_path, stand_in.url), TOKEN)
    assert code == 1, out + err
    problems = err.strip().splitlines()
    assert problems[0].startswith("models.fraud.gitlab_project: GitLab project ml/fraud")
    assert "no_one_allowed" in problems[0] and "set it to maintainer" in problems[0]
    assert not any("ml/churn" in line for line in problems)
    assert TOKEN not in out + err

    stand_in.restrict_variables("ml/fraud", "maintainer")
    code, out, err = await check_config(config_file(tmp_path, stand_in.url), TOKEN)
    assert code == 0, out + err
    assert "configuration is valid: models churn, fraud" in out


async def test_check_config_notes_what_it_cannot_read(
    stand_in: GitLabStandIn, tmp_path: Path
) -> None:
    stand_in.restrict_variables("ml/fraud", "no_one_allowed")
    stand_in.set_access_level(DEVELOPER)
    code, out, err = await check_config(config_file(tmp_path, stand_in.url), TOKEN)
    assert code == 0, out + err
    assert "the bot's token is Developer in ml/fraud" in out and "takes Maintainer" in out
    code, out, err = await check_config(config_file(tmp_path, stand_in.url), None)
    assert code == 0 and "gitlab.token is not set" in out
