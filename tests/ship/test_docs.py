"""What people set up from: the configuration reference, the Slack app manifest and the example
ML project files, each checked against the code it describes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from bot.config import reference as config_doc
from bot.config.loading import load_settings
from bot.config.settings import Settings
from bot.domain.accuracy import parse_metrics
from bot.domain.runs import Run, RunState
from bot.sandbox.ecspresso.render import (
    MustEnvUnset,
    load_config,
    load_json,
    load_task_definition,
)
from bot.services.training.commands import Training, hp_variable, run_variables
from handlers import actions, commands, reactions
from integrations.kubernetes import templates as job_templates
from integrations.kubernetes.manifests import job_manifest
from tests.tools import Validate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PROJECT = EXAMPLES / "ml-project"
MANIFEST = ROOT / "slack-app-manifest.yml"
SHA = "3f6c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
DIGEST = "sha256:" + "0" * 64

# Slack Web API methods the bot may call and the bot scope each needs.
METHOD_SCOPES = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "chat_delete": "chat:write",
    "users_info": "users:read",
    "usergroups_users_list": "usergroups:read",
    "usergroups_list": "usergroups:read",
    "reactions_add": "reactions:write",
    "reactions_remove": "reactions:write",
    "reactions_get": "reactions:read",
    "conversations_info": "channels:read",
    "conversations_replies": "channels:history",
    "conversations_history": "channels:history",
    "conversations_list": "channels:read",
    "files_upload_v2": "files:write",
}
EVENT_SCOPES = {"reaction_added": "reactions:read", "reaction_removed": "reactions:read"}
SLACK_CALL = re.compile(r"_client\.(\w+)\(")


@pytest.fixture(scope="module")
def example() -> Settings:
    return load_settings(EXAMPLES / "mlops-bot.yaml", env={})


# ---- docs/configuration.md ---------------------------------------------------------------------


def test_configuration_reference_is_current() -> None:
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == config_doc.render(), (
        "docs/configuration.md is stale: python -m bot.config.reference > docs/configuration.md"
    )


def test_every_setting_has_a_description_and_an_example() -> None:
    assert config_doc.undocumented() == [], (
        "add these key paths to bot.config.descriptions.DESCRIPTIONS"
    )
    assert config_doc.stale() == [], "these described key paths are gone from the model"


def test_every_environment_variable_is_in_the_reference() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "GITLAB_WEBHOOK_SECRET",
        "MLOPS_BOT_STORE_URL",
    ):
        assert f"| `{name}` |" in text


# ---- slack-app-manifest.yml --------------------------------------------------------------------


class Registrations:
    """Stands in for the bolt app: records what the handlers register."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.events: list[str] = []
        self.actions: list[str] = []

    def command(self, name: str) -> Any:
        self.commands.append(name)
        return self.listener

    def event(self, name: str) -> Any:
        self.events.append(name)
        return self.listener

    def action(self, name: str) -> Any:
        self.actions.append(name)
        return self.listener

    @staticmethod
    def listener(*_args: Any, **_kwargs: Any) -> None:
        return None


@pytest.fixture(scope="module")
def registered() -> Registrations:
    app = Registrations()
    deps = cast(Any, object())
    for module in (commands, actions, reactions):
        module.register(cast(Any, app), deps)
    return app


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return data


def slack_calls() -> set[str]:
    """Slack client methods called by the bot's code (the sandbox's stand-ins excluded)."""
    found: set[str] = set()
    for package in ("bot", "handlers", "integrations"):
        for path in (ROOT / package).rglob("*.py"):
            if "sandbox" not in path.parts:
                found.update(SLACK_CALL.findall(path.read_text()))
    return {name for name in found if "_" in name and name[0].islower()}


def test_manifest_has_the_commands_and_events_the_bot_registers(
    manifest: dict[str, Any], registered: Registrations
) -> None:
    commands_ = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert sorted(commands_) == sorted(registered.commands) == ["/deploy", "/train"]
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert sorted(events) == sorted(registered.events)
    assert registered.actions, "buttons are registered"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


def test_manifest_asks_for_exactly_the_scopes_the_bot_uses(
    manifest: dict[str, Any], registered: Registrations
) -> None:
    calls = slack_calls()
    unknown = calls - set(METHOD_SCOPES)
    assert not unknown, f"add the scopes of {unknown} to METHOD_SCOPES and the manifest"
    needed = {METHOD_SCOPES[c] for c in calls} | {"commands"}
    needed |= {EVENT_SCOPES[e] for e in registered.events}
    assert calls >= {"chat_postMessage", "users_info", "usergroups_users_list"}
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(needed)


def test_manifest_urls_match_the_connection_mode(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    urls = [c.get("url") for c in manifest["features"]["slash_commands"]]
    urls += [settings["event_subscriptions"].get("request_url")]
    urls += [settings["interactivity"].get("request_url")]
    if settings["socket_mode_enabled"]:
        assert urls == [None] * len(urls)
    else:
        assert all(u and u.endswith("/slack/events") for u in urls)
    commented = re.findall(r"#\s*(?:url|request_url): (\S+)", MANIFEST.read_text())
    assert len(commented) == len(urls) and all(u.endswith("/slack/events") for u in commented)


# ---- examples ----------------------------------------------------------------------------------


def test_example_bot_config_loads(example: Settings) -> None:
    assert sorted(example.models) == ["churn", "fraud"]
    assert {m.training.backend for m in example.models.values()} == {"gitlab", "kubernetes"}
    assert example.slack.bot_token is None and example.gitlab.token is None  # no secrets in it


def deploy_env(example: Settings, model: str, env: str, tag: str) -> dict[str, str]:
    """What the bot hands ecspresso for a deploy (see DeployRunner.ecspresso_env)."""
    config = example.models[model]
    cluster, service = config.environments[env].cluster, config.environments[env].service
    return {
        "AWS_REGION": example.aws.region,
        **config.environments[env].variables,
        "IMAGE_TAG": tag,
        "IMAGE_DIGEST": DIGEST,
        "IMAGE_REPOSITORY": config.deploy.image_repository or "",
        "MLOPS_DEPLOY_ID": "7",
        **({"ECS_CLUSTER": cluster} if cluster else {}),
        **({"ECS_SERVICE": service} if service else {}),
    }


def test_example_task_definition_pins_the_image_digest(example: Settings) -> None:
    for name, model in example.models.items():
        assert model.deploy.source.kind == "gitlab"
        directory = PROJECT / model.deploy.source.path.format(model=name, env="stg")
        for env_name, env in model.environments.items():
            values = deploy_env(example, name, env_name, SHA)
            config = load_config(str(directory / model.deploy.source.config), values)
            assert (config.cluster, config.service) == (env.cluster, env.service)
            task = load_task_definition(config, values)
            (container,) = task["containerDefinitions"]
            registry = env.variables["ECR_REGISTRY"]
            assert container["image"] == f"{registry}/{model.deploy.image_repository}@{DIGEST}"
            assert config.service_definition is not None
            service = load_json(config.service_definition, values)
            assert (
                service["loadBalancers"][0]["targetGroupArn"] == env.variables["TARGET_GROUP_ARN"]
            )
            assert service["deploymentConfiguration"]["deploymentCircuitBreaker"]["rollback"]


def test_example_task_definition_needs_the_image_digest(example: Settings) -> None:
    values = deploy_env(example, "fraud", "stg", SHA)
    config = load_config(str(PROJECT / "deploy" / "ecspresso.yml"), values)
    del values["IMAGE_TAG"]  # a deploy by digest has no tag
    load_task_definition(config, values)
    del values["IMAGE_DIGEST"]
    with pytest.raises(MustEnvUnset, match="IMAGE_DIGEST"):
        load_task_definition(config, values)


def test_example_pipeline_uses_the_bots_variables_and_metrics(example: Settings) -> None:
    ci = yaml.safe_load((PROJECT / ".gitlab-ci.yml").read_text())
    fraud = example.models["fraud"]
    variables = ci["variables"]
    run = Run(
        1,
        "fraud",
        "gitlab",
        RunState.QUEUED,
        "U1",
        "main",
        datetime.now(UTC),
        params={p: "1" for p in fraud.training.parameters or []},
    )
    assert set(run_variables(run)) <= set(variables), "defaults for every variable /train sets"
    train = ci["train"]
    script = "\n".join(train["script"])
    assert train["tags"] == ["gpu-${MLOPS_GPUS}"]
    for parameter in fraud.training.parameters or []:
        assert f"${{{hp_variable(parameter)}}}" in script
    assert "${MLOPS_DATASET}" in script
    evaluate = ci[fraud.training.gitlab.metrics_job]
    assert fraud.training.gitlab.metrics_path in evaluate["artifacts"]["paths"]
    assert "${TEST_SET}" in "\n".join(evaluate["script"])
    assert fraud.training.baseline is not None
    assert variables["TEST_SET"] == fraud.training.baseline.test_set
    assert fraud.deploy.image_tag == "{sha}" and variables["IMAGE_TAG"] == "$CI_COMMIT_SHA"
    build = "\n".join(ci["build-image"]["script"])
    assert 'docker push "${ECR_REGISTRY}/${IMAGE_REPOSITORY}:${IMAGE_TAG}"' in build
    assert variables["IMAGE_REPOSITORY"] == fraud.deploy.image_repository
    deploy = ci[".ecspresso"]
    assert "ecspresso deploy --config deploy/ecspresso.yml" in deploy["script"]
    assert any("sha256sum -c" in line for line in deploy["before_script"])


def test_example_metrics_artifact_parses(example: Settings) -> None:
    report = parse_metrics((PROJECT / "metrics.example.json").read_bytes())
    baseline = example.models["fraud"].training.baseline
    assert baseline is not None and report.test_set == baseline.test_set
    assert set(baseline.metrics) <= set(report.metrics)


def test_example_gpu_job_is_what_the_bot_creates(example: Settings, validate: Validate) -> None:
    churn = example.models["churn"]
    run = Run(
        42,
        "churn",
        "kubernetes",
        RunState.QUEUED,
        "U01ALICE01",
        "main",
        datetime.now(UTC),
        dataset="v12",
        gpus=2,
        params={"lr": "0.01", "epochs": "30"},
    )
    unused = cast(Any, None)  # job_spec reads only the settings
    training = Training(example, unused, unused, unused, None, None)
    template = job_templates.load(EXAMPLES / "kubernetes" / "train-job.yaml")
    job = job_manifest(training.launcher.job_spec(run, churn), template)
    validate([template, job])
    pod = job["spec"]["template"]["spec"]
    (train,) = pod["containers"]
    assert train["resources"]["limits"]["nvidia.com/gpu"] == "2"  # filled in from gpus=2
    assert train["resources"]["requests"]["memory"] == "48Gi"  # kept as written
    assert {"name": "HP_EPOCHS", "value": "30"} in train["env"]
    assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in pod["volumes"])
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert job["metadata"]["labels"]["mlops-bot/run"] == "42"


def test_doc_links_point_at_files_that_exist() -> None:
    pages = [*(ROOT / "docs").glob("*.md"), EXAMPLES / "README.md"]
    for page in pages:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            target = link.split("#")[0]
            if target and not target.startswith(("http://", "https://", "mailto:")):
                assert (page.parent / target).exists(), f"{page.name}: broken link {link}"


def test_manifest_and_json_examples_are_well_formed() -> None:
    for path in (PROJECT / "deploy").glob("*.json"):
        text = re.sub(r"\{\{.*?\}\}", "x", path.read_text())
        json.loads(text)
