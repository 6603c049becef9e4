"""One trial's outside world, which outlives the bot: fresh Slack and GitLab stand-ins, AWS on a
shared moto server (reset), the response_url catcher, and the config file the bot reads."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from bot.config.loading import load_settings, settings_from_data
from bot.config.runtime import StoreSettings
from bot.config.settings import Settings
from bot.sandbox.aws import MotoServer
from bot.sandbox.crashes.slack import ReplyCatcher
from bot.sandbox.gitlab.projects import GITLAB_TOKEN, METRICS
from bot.sandbox.gitlab.server import GitLabStandIn
from bot.sandbox.gitlab.state import JobPlan, StandInProject
from bot.sandbox.stand_ins import (
    SANDBOX_AWS,
    StandIns,
    control_file,
    sandbox_settings,
    slack_stand_in,
)

SAMPLE = "sample-config.yaml"
ECSPRESSO_LOG = "ecspresso.log"
QUICK_JOB = 0.2  # seconds each CI job of a training pipeline runs
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quick_gitlab() -> GitLabStandIn:
    """The sandbox's projects with a training pipeline that takes well under a second."""
    projects = []
    for path, report in METRICS.items():
        metrics = {"metrics.json": json.dumps(report).encode()}
        jobs = [
            JobPlan("prepare", "prepare", duration_s=QUICK_JOB, trace="ok\n"),
            JobPlan("train", "train", duration_s=QUICK_JOB, trace="epoch 1/1\n"),
            JobPlan("evaluate", "evaluate", duration_s=QUICK_JOB, artifacts=metrics),
        ]
        projects.append(StandInProject(path=path, jobs=jobs))
    return GitLabStandIn(token=GITLAB_TOKEN, projects=projects)


def logged_ecspresso() -> str:
    return str(resources.files("bot.sandbox.crashes").joinpath("ecspresso-logged"))


def plain(value: Any) -> Any:
    """Settings as YAML-able data, secrets included (the file is the bot's own config)."""
    if isinstance(value, BaseModel):
        return plain(value.model_dump(mode="python"))
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and isinstance(value.value, str | int):  # enums
        return value.value
    return value


@dataclass
class World:
    directory: Path
    stand_ins: StandIns
    catcher: ReplyCatcher
    settings: Settings
    config: Path

    @property
    def ecspresso_log(self) -> Path:
        return self.directory / ECSPRESSO_LOG

    @property
    def control(self) -> Path:
        """The ecspresso stand-in's control file: in every ecspresso's environment, so it
        marks the processes this trial's bots started."""
        return control_file(self.stand_ins)

    @property
    def bot_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.server.port}"

    def bot_env(self) -> dict[str, str]:
        """The bot's environment: nothing from the test runner's but the basics."""
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        return env | SANDBOX_AWS

    async def stop(self) -> None:
        self.stand_ins.gitlab.auto_advance(None)
        await self.stand_ins.gitlab.stop()
        await self.stand_ins.slack.stop()
        await self.catcher.stop()


async def build_world(directory: Path, aws: MotoServer, store_url: str) -> World:
    """Stand-ins for this trial; its deploy targets created in ``aws``'s region (a region no
    other trial uses since moto was last reset: moto keeps one state per region)."""
    stand_ins = StandIns(
        slack_stand_in(), quick_gitlab(), aws=aws, deploy_root=directory / "deploy"
    )
    catcher = ReplyCatcher()
    await stand_ins.slack.start()
    await stand_ins.gitlab.start()
    await catcher.start()
    stand_ins.gitlab.auto_advance(0.05)
    settings = await asyncio.to_thread(prepare, stand_ins, directory, store_url)
    world = World(directory, stand_ins, catcher, settings, directory / "config.yaml")
    return world


def prepare(stand_ins: StandIns, directory: Path, store_url: str) -> Settings:
    """The blocking part: AWS targets, the ecspresso log and the config file."""
    directory.mkdir(parents=True, exist_ok=True)
    base = load_settings(Path(str(resources.files("bot.sandbox").joinpath(SAMPLE))), env={})
    stand_ins.create_targets(base)
    log = directory / ECSPRESSO_LOG
    log.touch()
    settings = trial_settings(sandbox_settings(base, stand_ins, directory), store_url, log)
    config = directory / "config.yaml"
    config.write_text(yaml.safe_dump(plain(settings)), encoding="utf-8")
    settings_from_data(yaml.safe_load(config.read_text(encoding="utf-8")))  # round-trips
    return settings


def trial_settings(settings: Settings, store_url: str, ecspresso_log: Path) -> Settings:
    """The sandbox's settings on the trial's store and port, ecspresso runs logged."""
    models = {}
    for name, model in settings.models.items():
        envs = {
            env_name: env.model_copy(
                update={
                    "variables": {**env.variables, "MLOPS_CRASH_ECSPRESSO_LOG": str(ecspresso_log)}
                }
            )
            for env_name, env in model.environments.items()
        }
        models[name] = model.model_copy(update={"environments": envs})
    return settings.model_copy(
        update={
            "store": StoreSettings(url=store_url),
            "server": settings.server.model_copy(update={"port": free_port()}),
            "ecspresso": settings.ecspresso.model_copy(update={"path": logged_ecspresso()}),
            "models": models,
            "log_level": "info",
        }
    )
