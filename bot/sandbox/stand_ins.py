"""The outside systems the sandbox plays (Slack, GitLab, AWS through moto, ecspresso) and the
settings that point the bot at them."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.config.connections import AwsSettings, GitLabSettings, SlackSettings
from bot.config.runtime import StoreSettings
from bot.config.settings import Settings
from bot.sandbox.fixtures.ab import with_ab_routes
from bot.sandbox.gitlab.projects import GITLAB_TOKEN, gitlab_stand_in
from bot.sandbox.gitlab.server import GitLabStandIn
from bot.sandbox.people import BOT_TOKEN, CHANNELS, GROUPS, PEOPLE, SIGNING_SECRET
from bot.sandbox.slack import SlackStandIn, SlackUser

SANDBOX_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def slack_stand_in() -> SlackStandIn:
    users = [SlackUser(id=p.id, name=p.name, real_name=p.real_name) for p in PEOPLE]
    return SlackStandIn(bot_token=BOT_TOKEN, users=users, usergroups=GROUPS, channels=CHANNELS)


def ecspresso_stand_in() -> str:
    return str(resources.files("bot.sandbox").joinpath("bin", "ecspresso"))


@dataclass
class StandIns:
    slack: SlackStandIn
    gitlab: GitLabStandIn
    aws: Any = None  # a bot.sandbox.aws.MotoServer when moto is installed
    deploy_root: Path = Path(".")
    ab_routes: dict[tuple[str, str], Any] = field(default_factory=dict)
    exits: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @classmethod
    async def started(cls, settings: Settings, data_dir: Path) -> StandIns:
        stand_ins = cls(slack_stand_in(), gitlab_stand_in(), deploy_root=data_dir / "deploy")
        await stand_ins.slack.start()
        await stand_ins.gitlab.start()
        stand_ins.gitlab.auto_advance(0.25)
        stand_ins.start_aws(settings)
        return stand_ins

    def start_aws(self, settings: Settings) -> None:
        """moto for ECR and ECS, with each model's services running a first image (skipped
        when moto, a sandbox extra, is not installed: deploys then say AWS is unreachable)."""
        try:
            from bot.sandbox.aws import running_moto
        except ImportError:
            return
        for name, value in SANDBOX_AWS.items():
            os.environ.setdefault(name, value)
        self.aws = self.exits.enter_context(running_moto(ecs_running=1))
        self.aws.reset()  # moto's backends are per process: start from nothing
        self.create_targets(settings)
        from bot.sandbox.fixtures.deploys import Scheduler

        # moto starts no tasks for services: this plays ECS's scheduler (verification reads tasks)
        self.exits.callback(Scheduler(self.aws.client("ecs")).start().stop)

    def create_targets(self, settings: Settings) -> None:
        from bot.sandbox.fixtures.ab import b_envs, create_ab
        from bot.sandbox.fixtures.deploys import create_target

        ecr, ecs = self.aws.client("ecr"), self.aws.client("ecs")
        tags = {}
        for model, config in settings.models.items():
            if not config.deploy.image_repository or not config.gitlab_project:
                continue
            sha = self.gitlab.state.project(config.gitlab_project).resolve(None) or "v2"
            tags[model] = ("v1", sha)
            for env in [e for e in config.environments if e not in b_envs(config)]:
                create_target(
                    ecr, ecs, self.deploy_root, model=model, env=env, tags=("v1", sha), running="v1"
                )
        # B services (in A's cluster) and the ALB routes of every `ab:` setup
        self.ab_routes = create_ab(self.aws, self.deploy_root, settings, tags=tags)
        self.publish_configs(settings)

    def publish_configs(self, settings: Settings) -> None:
        """A model whose configs live in GitLab (`deploy.source.kind: gitlab`) gets the
        sandbox's config files in its GitLab project, at ``source.path`` on every commit."""
        for model, config in settings.models.items():
            source = config.deploy.source
            if source.kind != "gitlab" or not config.gitlab_project:
                continue
            for env in config.environments:
                directory = self.deploy_root / model / env
                for path in sorted(directory.glob("*")) if directory.is_dir() else []:
                    target = f"{source.path.format(model=model, env=env)}/{path.name}"
                    self.gitlab.set_file(config.gitlab_project, target, path.read_bytes())

    async def stop(self) -> None:
        self.gitlab.auto_advance(None)
        await self.gitlab.stop()
        await self.slack.stop()
        self.exits.close()


def control_file(stand_ins: StandIns) -> Path:
    """Where the console writes the ecspresso stand-in's failure mode (`ecspresso fail`)."""
    return stand_ins.deploy_root.parent / "ecspresso-control"


def with_local_configs(settings: Settings, stand_ins: StandIns) -> dict[str, Any]:
    """Each model's deploy config read from the sandbox's own directory, and every deploy
    reading the stand-in's failure mode from the sandbox's control file."""
    root, control = stand_ins.deploy_root, str(control_file(stand_ins))
    models = {}
    for name, model in settings.models.items():
        source = model.deploy.source
        if source.kind == "local":  # a gitlab source stays: StandIns.publish_configs fills it
            source = source.model_copy(
                update={"kind": "local", "path": str(root / "{model}" / "{env}")}
            )
        deploy = model.deploy.model_copy(update={"source": source})
        envs = {
            env_name: env.model_copy(
                update={"variables": {**env.variables, "MLOPS_ECSPRESSO_STANDIN_CONTROL": control}}
            )
            for env_name, env in model.environments.items()
        }
        models[name] = model.model_copy(update={"deploy": deploy, "environments": envs})
    return models


def sandbox_settings(base: Settings, stand_ins: StandIns, data_dir: Path) -> Settings:
    """The given settings pointed at the stand-ins and a throwaway SQLite store."""
    slack = SlackSettings(
        bot_token=SecretStr(BOT_TOKEN),
        signing_secret=SecretStr(SIGNING_SECRET),
        api_url=stand_ins.slack.base_url,
    )
    update: dict[str, Any] = {
        "slack": slack,
        "gitlab": GitLabSettings(url=stand_ins.gitlab.url, token=SecretStr(GITLAB_TOKEN)),
        "store": StoreSettings(url=f"sqlite:///{data_dir / 'sandbox.db'}"),
        "data_dir": data_dir,
        "notifier": base.notifier.model_copy(update={"edit_interval_seconds": 0.2}),
        "training": base.training.model_copy(update={"poll_seconds": 0.5, "poll_max_seconds": 1.0}),
        "ecspresso": base.ecspresso.model_copy(
            update={
                "path": ecspresso_stand_in(),
                "timeout_seconds": min(base.ecspresso.timeout_seconds, 60.0),
                "verify_seconds": min(base.ecspresso.verify_seconds, 20.0),
            }
        ),
        "models": with_ab_routes(with_local_configs(base, stand_ins), stand_ins.ab_routes),
    }
    if stand_ins.aws is not None:
        update["aws"] = AwsSettings(
            region=stand_ins.aws.region, endpoint_url=stand_ins.aws.endpoint_url
        )
    return base.model_copy(update=update)
