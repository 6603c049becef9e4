"""The ecspresso config of a model's environment: from a local directory, or from the model's
GitLab repository at the run's commit, copied into a temporary directory for one call."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath

import yaml

from bot.config.settings import Settings
from bot.errors import ExternalError, NotFound, UserInputError
from bot.ports import RepoFiles

REFERENCED = ("task_definition", "service_definition")


def referenced_files(config: bytes) -> list[str]:
    """The files an ecspresso.yml points to (task and service definitions)."""
    try:
        data = yaml.safe_load(config.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        raise UserInputError("the ecspresso config is not valid YAML") from None
    if not isinstance(data, dict):
        raise UserInputError("the ecspresso config must be a YAML mapping")
    return [str(data[key]) for key in REFERENCED if isinstance(data.get(key), str)]


def safe_relative(base: PurePosixPath, name: str) -> PurePosixPath:
    """``name`` under ``base``, refusing paths that climb out of it."""
    joined = PurePosixPath(base, name)
    if name.startswith("/") or ".." in PurePosixPath(name).parts:
        raise UserInputError(f"the ecspresso config names a file outside its directory: {name}")
    return joined


class DeployConfigs:
    def __init__(self, settings: Settings, files: RepoFiles | None) -> None:
        self.settings = settings
        self.files = files

    @asynccontextmanager
    async def checkout(self, model: str, env: str, sha: str | None) -> AsyncIterator[Path]:
        """The path of the ecspresso config file to pass to ``--config``."""
        source = self.settings.models[model].deploy.source
        directory = source.path.format(model=model, env=env)
        if source.kind == "local":
            path = Path(directory) / source.config
            if not path.is_file():
                raise NotFound(f"no ecspresso config at {path}")
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="mlops-bot-ecspresso-") as tmp:
            yield await self.fetch(model, PurePosixPath(directory), source.config, sha, Path(tmp))

    async def fetch(
        self, model: str, directory: PurePosixPath, config: str, sha: str | None, into: Path
    ) -> Path:
        project = self.settings.models[model].gitlab_project
        if self.files is None or not project or not sha:
            raise ExternalError(
                f"cannot read {model}'s ecspresso config from GitLab: "
                "GitLab or the run's commit is not known"
            )
        main = await self.read(project, safe_relative(directory, config), sha)
        (into / config).write_bytes(main)
        for name in referenced_files(main):
            data = await self.read(project, safe_relative(directory, name), sha)
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return into / config

    async def read(self, project: str, path: PurePosixPath, sha: str) -> bytes:
        assert self.files is not None
        data = await self.files.read_file(project, str(path), sha)
        if data is None:
            raise NotFound(f"{project} has no {path} at {sha[:12]}")
        return data
