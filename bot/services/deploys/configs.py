"""The ecspresso config of a model's environment, from operator-controlled places only.

ecspresso templates can read SSM and Secrets Manager and (v2.5+) run commands with the bot's AWS
identity, so whoever writes the config controls that identity. The config therefore comes from
a local directory the operator ships with the bot (a ConfigMap), or from a *protected* branch of
the model's GitLab repository (its default branch, or ``deploy.source.ref``), checked through
the GitLab API before any file is read, and read at that branch's newest commit, all files at
the same commit. A run's commit never supplies a config: a run contributes its image digest.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath

import yaml

from bot.config.settings import Settings
from bot.errors import Conflict, ExternalError, NotFound, UserInputError
from bot.ports import BranchHead, RepoFiles

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


def image_variables(image_tag: str, digest: str, repository: str) -> dict[str, str]:
    """The image as ecspresso's templates read it: ``IMAGE_DIGEST`` (always, ``sha256:...``),
    ``IMAGE_REPOSITORY``, ``IMAGE`` (``<repository>@sha256:...``, pinned) and ``IMAGE_TAG`` only
    for a deploy by tag; a deploy by digest has no tag, so a template that still builds
    ``repo:{{ must_env `IMAGE_TAG` }}`` stops at the unset variable instead of rendering the
    invalid ``repo:sha256:...``."""
    values = {"IMAGE_DIGEST": digest, "IMAGE_REPOSITORY": repository}
    if repository and digest:
        values["IMAGE"] = f"{repository}@{digest}"
    if image_tag and "@" not in image_tag and not image_tag.startswith("sha256:"):
        values["IMAGE_TAG"] = image_tag
    return values


def unprotected(project: str, head: BranchHead, configured: bool) -> Conflict:
    which = "the configured branch" if configured else "its default branch"
    return Conflict(
        f"refusing to read the deploy config of {project} from {which} `{head.name}`: GitLab "
        "does not protect it, so anyone who can push there would control what ecspresso runs "
        "with the bot's AWS identity. Protect the branch in GitLab (Settings → Repository → "
        "Protected branches), point `deploy.source.ref` at a protected branch, or ship the "
        "config with the bot (`deploy.source.kind: local`)."
    )


class DeployConfigs:
    def __init__(self, settings: Settings, files: RepoFiles | None) -> None:
        self.settings = settings
        self.files = files

    @asynccontextmanager
    async def checkout(self, model: str, env: str) -> AsyncIterator[Path]:
        """The path of the ecspresso config file to pass to ``--config`` (a temporary copy for a
        GitLab source, removed afterwards)."""
        source = self.settings.models[model].deploy.source
        directory = source.path.format(model=model, env=env)
        if source.kind == "local":
            path = Path(directory) / source.config
            if not path.is_file():
                raise NotFound(f"no ecspresso config at {path}")
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="mlops-bot-ecspresso-") as tmp:
            yield await self.fetch(model, PurePosixPath(directory), source.config, Path(tmp))

    async def check(self, model: str, env: str) -> None:
        """Refuse now, while the requester is still there to read why, a source that a deploy
        could not use: a missing local config, or a GitLab branch that is not protected."""
        source = self.settings.models[model].deploy.source
        if source.kind == "local":
            path = Path(source.path.format(model=model, env=env)) / source.config
            if not path.is_file():
                raise NotFound(f"no ecspresso config at {path}")
            return
        await self.protected_head(model)

    async def protected_head(self, model: str) -> tuple[str, BranchHead]:
        """The model's project and the protected branch its configs are read from."""
        config = self.settings.models[model]
        project = config.gitlab_project
        if self.files is None or not project:
            raise ExternalError(
                f"cannot read {model}'s ecspresso config from GitLab: set the model's "
                "`gitlab_project` and the bot's `gitlab.token`, or use `deploy.source.kind: local`"
            )
        ref = config.deploy.source.ref
        head = await self.files.branch(project, ref)
        if not head.protected:
            raise unprotected(project, head, configured=ref is not None)
        return project, head

    async def fetch(self, model: str, directory: PurePosixPath, config: str, into: Path) -> Path:
        project, head = await self.protected_head(model)
        main = await self.read(project, safe_relative(directory, config), head)
        (into / config).write_bytes(main)
        for name in referenced_files(main):
            data = await self.read(project, safe_relative(directory, name), head)
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return into / config

    async def read(self, project: str, path: PurePosixPath, head: BranchHead) -> bytes:
        assert self.files is not None
        data = await self.files.read_file(project, str(path), head.sha)
        if data is None:
            raise NotFound(
                f"{project} has no {path} on its protected branch `{head.name}` "
                f"(commit {head.sha[:12]})"
            )
        return data
