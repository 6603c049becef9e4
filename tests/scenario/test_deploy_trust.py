"""/deploy's trust boundary end to end, through signed Slack requests: configs come from the
model's protected GitLab branch (never a run's commit), diffs run only after the gates and show
a summary, and any image (a tag, a digest) can be deployed with the gates it would face."""

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
from bot.domain.runs import RunState
from bot.sandbox.console import Console
from bot.sandbox.fixtures.deploys import push_image
from bot.sandbox.runner import Sandbox, running_sandbox, sample_config
from bot.sandbox.slack.state import Message
from tests.helpers import eventually
from tests.scenario.test_deploy import card_of, deploy_state, replies_to, trained

FEATURE = "fe" * 20
HOSTILE_CONFIG = (
    b"region: us-east-1\ncluster: ml-stg\nservice: fraud-api\n"
    b"service_definition: ecs-service-def.json\ntask_definition: ecs-task-def.json\n"
)
FILES = r"/repository/files/"


def trusted_config(tmp_path: Path, **ecspresso: float) -> Path:
    """The sample config with fraud's deploy configs in its GitLab project (deploy/{env}),
    stg showing the full (scrubbed) diff."""
    data = yaml.safe_load(sample_config().read_text())
    data["models"]["fraud"]["deploy"]["source"] = {"kind": "gitlab", "path": "deploy/{env}"}
    data["models"]["fraud"]["environments"]["stg"]["diff"] = "full"
    if ecspresso:
        data["ecspresso"] = ecspresso
    config = tmp_path / "bot.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


@pytest.fixture
async def trusted(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, Console]]:
    async with running_sandbox(trusted_config(tmp_path)) as sandbox, aiohttp.ClientSession() as s:
        yield sandbox, sandbox.console(io.StringIO(), s)


@pytest.fixture
async def quick_timeout(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, Console]]:
    """ecspresso's time limit cut to 3 s, so a hanging diff times out quickly."""
    config = trusted_config(tmp_path, timeout_seconds=3, verify_seconds=5)
    async with running_sandbox(config) as sandbox, aiohttp.ClientSession() as s:
        yield sandbox, sandbox.console(io.StringIO(), s)


def cards_seen(sandbox: Sandbox, deploy_id: int) -> list[str]:
    """Every version of the deploy's card Slack saw, posted and edited, in order."""
    seen: list[str] = []

    def record(message: Message, kind: str) -> None:
        if message.text.startswith("fraud → ") and f"#{deploy_id}:" in message.text:
            seen.append(json.dumps(message.blocks, ensure_ascii=False))

    sandbox.slack.subscribe(record)
    return seen


def task_definition(sandbox: Sandbox, cluster: str = "ml-stg") -> dict[str, Any]:
    assert sandbox.aws is not None
    ecs = sandbox.aws.client("ecs")
    service = ecs.describe_services(cluster=cluster, services=["fraud-api"])["services"][0]
    found = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    return dict(found["taskDefinition"])


def digest_of(sandbox: Sandbox, tag: str) -> str:
    assert sandbox.aws is not None
    ecr = sandbox.aws.client("ecr")
    found = ecr.describe_images(repositoryName="fraud", imageIds=[{"imageTag": tag}])
    return str(found["imageDetails"][0]["imageDigest"])


# -- the config comes from the protected branch, never from the run's commit -----------------


async def test_a_branch_config_is_never_deployed(trusted: tuple[Sandbox, Console]) -> None:
    sandbox, console = trusted
    gitlab = sandbox.gitlab
    main = gitlab.state.project("ml/fraud").resolve("main")
    gitlab.add_branch("ml/fraud", "feature", FEATURE)
    # the branch's own config would hand the bot's AWS secret to the container
    protected_td = json.loads(
        gitlab.state.project("ml/fraud").files["deploy/stg/ecs-task-def.json"]
    )
    hostile_td = json.loads(json.dumps(protected_td))
    hostile_td["containerDefinitions"][0]["environment"].append(
        {"name": "STOLEN", "value": '{{ must_env "AWS_SECRET_ACCESS_KEY" }}'}
    )
    gitlab.set_file("ml/fraud", "deploy/stg/ecspresso.yml", HOSTILE_CONFIG, at=FEATURE)
    gitlab.set_file(
        "ml/fraud", "deploy/stg/ecs-task-def.json", json.dumps(hostile_td).encode(), at=FEATURE
    )
    assert sandbox.aws is not None
    push_image(sandbox.aws.client("ecr"), "fraud", FEATURE)  # what the branch's pipeline pushed

    await console.execute("/train fraud ref=feature")

    async def done() -> bool:
        run = await sandbox.bot.store.runs.get(1)
        return run is not None and run.state == RunState.SUCCEEDED

    await eventually(done, timeout=20)
    run = await sandbox.bot.store.runs.get(1)
    assert run is not None and run.sha == FEATURE
    await console.execute("/deploy fraud stg run=1")
    await deploy_state(sandbox, 1, DeployState.SUCCEEDED)

    deployed = task_definition(sandbox)
    names = {e["name"] for c in deployed["containerDefinitions"] for e in c.get("environment", [])}
    assert "STOLEN" not in names and {"MODEL", "ENV"} <= names
    assert deployed["containerDefinitions"][0]["image"].endswith("@" + digest_of(sandbox, FEATURE))
    reads = gitlab.calls_to("GET", FILES)
    assert reads and {c.query["ref"] for c in reads} == {main}
    assert gitlab.calls_to("GET", r"/repository/branches/main$")


async def test_an_unprotected_default_branch_is_refused(trusted: tuple[Sandbox, Console]) -> None:
    sandbox, console = trusted
    await trained(sandbox, console)
    sandbox.gitlab.protect("ml/fraud")  # someone removed the protection of main
    await console.execute("/deploy fraud stg")
    reply = replies_to(sandbox, "U0ALICE")[-1]
    assert "refusing to read the deploy config of ml/fraud from its default branch `main`" in reply
    assert "Protect the branch in GitLab" in reply and "deploy.source.kind: local" in reply
    assert await sandbox.bot.store.deployments.history("fraud") == []
    assert sandbox.gitlab.calls_to("GET", FILES) == []


# -- diff: only after the gates, a summary on the card, failures shown ---------------------------


async def test_diff_is_not_run_for_someone_who_may_not_deploy_there(
    trusted: tuple[Sandbox, Console],
) -> None:
    sandbox, console = trusted
    await trained(sandbox, console)
    before = len(sandbox.gitlab.calls)
    await console.execute("as @dave")  # a viewer
    await console.execute("/deploy fraud diff stg")
    assert "Ask an admin for the role" in replies_to(sandbox, "U0DAVE")[-1]
    await console.execute("as @alice")
    await console.execute("/deploy fraud diff prod")  # never on stg: prod's gate says no
    assert "only takes an image that succeeded on stg" in replies_to(sandbox, "U0ALICE")[-1]
    await console.execute("/deploy fraud prod")
    assert "only takes an image that succeeded on stg" in replies_to(sandbox, "U0ALICE")[-1]
    later = sandbox.gitlab.calls[before:]
    assert not [c for c in later if "/repository/" in c.path]  # no config read, no diff ran
    await console.execute("/deploy fraud diff stg")
    reply = replies_to(sandbox, "U0ALICE")[-1]
    assert "would change" in reply and "task definition: +" in reply


async def test_the_card_shows_computing_diff_then_the_summary(
    trusted: tuple[Sandbox, Console],
) -> None:
    sandbox, console = trusted
    await trained(sandbox, console)
    seen = cards_seen(sandbox, 1)
    await console.execute("/deploy fraud stg")
    await deploy_state(sandbox, 1, DeployState.SUCCEEDED)
    assert "computing diff…" in seen[0]
    card = card_of(sandbox, 1)
    assert "*diff*: " in card and "task definition: +" in card and "computing" not in card
    d = await sandbox.bot.store.deployments.get(1)
    assert d is not None and d.diff is not None and "task definition: +" in d.diff
    # stg shows the full diff (`diff: full`) in the card's thread, secrets scrubbed
    await sandbox.slack.wait_for(
        lambda: any(m.thread_ts and m.text == "ecspresso diff" for m in sandbox.slack.messages)
    )
    full = next(m for m in sandbox.slack.messages if m.text == "ecspresso diff")
    assert "testing" not in json.dumps(full.blocks)  # the sandbox's AWS key and secret


async def test_a_failing_diff_is_shown_and_the_deploy_still_runs(
    trusted: tuple[Sandbox, Console],
) -> None:
    sandbox, console = trusted
    await trained(sandbox, console)
    await console.execute("ecspresso fail@diff")
    await console.execute("/deploy fraud stg")
    await deploy_state(sandbox, 1, DeployState.SUCCEEDED)
    card = card_of(sandbox, 1)
    assert "*diff*: diff unavailable: ecspresso diff failed" in card


async def test_a_hanging_diff_times_out_on_the_card(
    quick_timeout: tuple[Sandbox, Console],
) -> None:
    sandbox, console = quick_timeout
    await trained(sandbox, console)
    await on_stg_quickly(sandbox, console)
    seen = cards_seen(sandbox, 2)
    await console.execute("ecspresso hang@diff")
    await console.execute("/deploy fraud prod")
    await deploy_state(sandbox, 2, DeployState.AWAITING_APPROVAL)

    async def shown() -> bool:
        await sandbox.bot.notifier.flush()
        return "diff unavailable: ecspresso diff did not finish within 3" in card_of(sandbox, 2)

    await eventually(shown, timeout=20)
    assert "computing diff…" in seen[0]


async def on_stg_quickly(sandbox: Sandbox, console: Console) -> None:
    await console.execute("/deploy fraud stg")
    await deploy_state(sandbox, 1, DeployState.SUCCEEDED)


# -- any image: tags and digests, with the gates a run would face ------------------------------


async def test_a_digest_deploy_renders_repo_at_digest(trusted: tuple[Sandbox, Console]) -> None:
    sandbox, console = trusted
    digest = digest_of(sandbox, "v1")
    await console.execute(f"/deploy fraud stg image={digest}")
    await deploy_state(sandbox, 1, DeployState.SUCCEEDED)
    d = await sandbox.bot.store.deployments.get(1)
    assert d is not None and d.image_tag == f"fraud@{digest}" and d.digest == digest
    image = task_definition(sandbox)["containerDefinitions"][0]["image"]
    assert image.endswith(f"/fraud@{digest}") and ":sha256:" not in image
    assert f"fraud@{digest[:19]}" in card_of(sandbox, 1)
    await console.execute(f"/deploy fraud stg image=fraud@{digest}")
    await deploy_state(sandbox, 2, DeployState.SUCCEEDED)


async def test_a_digest_ecr_does_not_hold_is_refused(trusted: tuple[Sandbox, Console]) -> None:
    sandbox, console = trusted
    missing = "sha256:" + "0" * 64
    await console.execute(f"/deploy fraud stg image={missing}")
    assert f"no image fraud@{missing} in ECR" in replies_to(sandbox, "U0ALICE")[-1]
    await console.execute(f"/deploy fraud stg image=churn@{digest_of(sandbox, 'v1')}")
    assert (
        "names repository `churn`, but fraud's images are in `fraud`"
        in (replies_to(sandbox, "U0ALICE")[-1])
    )
    await console.execute("/deploy fraud stg image=fraud:sha256")
    assert "Invalid image" in replies_to(sandbox, "U0ALICE")[-1]
    assert await sandbox.bot.store.deployments.history("fraud") == []


async def test_a_bare_image_goes_where_its_gates_allow(trusted: tuple[Sandbox, Console]) -> None:
    sandbox, console = trusted
    # v1 was built by no run the bot knows: stg (no refs, no requires) takes it from a deployer
    await console.execute("/deploy fraud stg image=v1")
    await deploy_state(sandbox, 1, DeployState.SUCCEEDED)
    d = await sandbox.bot.store.deployments.get(1)
    assert d is not None and d.run_id is None and d.image_tag == "v1"
    # prod wants refs main/v* and a run whose gate passed: a bare image has neither
    await console.execute("/deploy fraud prod image=v1")
    reply = replies_to(sandbox, "U0ALICE")[-1]
    assert "was built by no run the bot recorded" in reply and "its ref is unknown" in reply
    await console.execute("as @dave")
    await console.execute("/deploy fraud stg image=v1")
    assert "Ask an admin for the role" in replies_to(sandbox, "U0DAVE")[-1]
    # a run's image named by digest is traced to the run (its tag in ECR) and passes prod's gates
    await console.execute("as @alice")
    await trained(sandbox, console)
    run = await sandbox.bot.store.runs.get(1)
    assert run is not None and run.sha is not None
    digest = digest_of(sandbox, run.sha)
    await console.execute(f"/deploy fraud stg image={digest}")
    await deploy_state(sandbox, 2, DeployState.SUCCEEDED)
    stg = await sandbox.bot.store.deployments.get(2)
    assert stg is not None and stg.run_id == 1 and stg.ref == "main"
    await console.execute(f"/deploy fraud prod image=fraud@{digest}")
    await deploy_state(sandbox, 3, DeployState.AWAITING_APPROVAL)
