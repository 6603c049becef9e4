"""What the ecspresso stand-in reads: ecspresso.yml and the JSON definitions it names, rendered
with ecspresso's ``{{ must_env `X` }}`` / ``{{ env `X` `default` }}`` template functions
(go-config's semantics: ``env`` falls back to its last argument, ``must_env`` panics)."""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.sandbox.ecspresso.flags import duration as go_duration

ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
ARGUMENT = re.compile(r"`([^`]*)`|\"((?:[^\"\\]|\\.)*)\"")
# Fields describe_task_definition adds that register_task_definition does not take.
DESCRIBED_ONLY = (
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
)
# Service fields ecspresso fills in itself rather than from the service definition file.
SERVICE_SET_BY_ECSPRESSO = ("cluster", "serviceName", "service", "taskDefinition")


class RenderError(Exception):
    """A config or definition ecspresso would refuse; the message reads like ecspresso's."""


@dataclass(frozen=True)
class Config:
    path: Path
    region: str
    cluster: str
    service: str
    task_definition: Path
    service_definition: Path | None
    timeout: float
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """How ecspresso prefixes its log lines: ``service/cluster``."""
        return f"{self.service}/{self.cluster}"


class MustEnvUnset(Exception):
    """``must_env`` of an unset variable: go-config re-panics, the process dies with exit 2."""

    def __init__(self, name: str, position: str) -> None:
        super().__init__(name)
        self.name, self.position = name, position

    def panic_text(self) -> str:
        """What the Go runtime prints on stderr (the goroutine dump shortened)."""
        call = f'<must_env "{self.name}">'
        return (
            f"panic: template attach failed: template: conf:{self.position}: executing "
            f'"conf" at {call}: error calling must_env: environment variable {self.name} '
            "is not defined\n\ngoroutine 1 [running]:\n"
            "github.com/kayac/go-config.(*Loader).ReadWithEnv(...)\n"
            "main.main()\n\t/home/runner/work/ecspresso/cmd/ecspresso/main.go:25 +0x1d\n"
        )


def env_value(args: list[str], env: Mapping[str, str]) -> str:
    """go-config's ``env``: the first argument set to a non-empty value, else the last
    argument itself (so ``{{ env "X" }}`` with X unset renders ``X``)."""
    for name in args:
        if env.get(name):
            return env[name]
    return args[-1]


def render(text: str, source: str, env: Mapping[str, str]) -> str:
    """Replaces every template action; unknown functions fail, an unset must_env panics."""

    def action(match: re.Match[str]) -> str:
        words = match.group(1).split(None, 1)
        func = words[0] if words else ""
        args = [
            a if a is not None else b
            for a, b in ARGUMENT.findall(words[1] if len(words) > 1 else "")
        ]
        if func == "must_env" and len(args) == 1:
            if args[0] not in env:
                raise MustEnvUnset(args[0], _position(text, match.start()))
            return env[args[0]]
        if func == "env" and args:
            return env_value(args, env)
        raise RenderError(f'template: {source}: function "{func}" not defined')

    return ACTION.sub(action, text)


def _position(text: str, offset: int) -> str:
    """``line:column`` of an action, as text/template reports it."""
    line = text.count("\n", 0, offset) + 1
    return f"{line}:{offset - (text.rfind(chr(10), 0, offset) + 1) + 2}"


CONFIG_NAMES = ("ecspresso.yml", "ecspresso.yaml", "ecspresso.json", "ecspresso.jsonnet")


def config_path(given: str, cwd: Path | None = None) -> Path:
    """``--config``; absent or the default, the first of ecspresso.{yml,yaml,json,jsonnet}."""
    if given != CONFIG_NAMES[0]:
        return Path(given)
    base = cwd or Path.cwd()
    return next((base / n for n in CONFIG_NAMES if (base / n).is_file()), Path(given))


def load_config(path: str, env: Mapping[str, str]) -> Config:
    config_path = Path(path)
    if config_path.suffix == ".jsonnet":
        raise RenderError(
            f"failed to load config file {path}: Jsonnet is not played by the stand-in"
        )
    try:
        raw = yaml.safe_load(render(config_path.read_text(), config_path.name, env)) or {}
    except OSError as exc:
        raise RenderError(f"failed to load config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RenderError(f"failed to parse config file {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise RenderError(f"failed to load config file {path}: not a mapping")
    region = raw.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise RenderError("region is required (config region or AWS_REGION)")
    base = config_path.parent
    service_def = raw.get("service_definition")
    return Config(
        path=config_path,
        region=str(region),
        cluster=str(raw.get("cluster") or "default"),
        service=str(raw.get("service") or ""),
        task_definition=base / str(raw.get("task_definition") or "ecs-task-def.json"),
        service_definition=base / str(service_def) if service_def else None,
        timeout=duration(str(raw.get("timeout") or "10m")),
        raw=raw,
    )


def duration(text: str) -> float:
    """Go's time.ParseDuration, as ecspresso reads the config's ``timeout``."""
    try:
        return go_duration(text.strip())
    except ValueError as err:
        raise RenderError(str(err)) from None


def rendered_config(config: Config) -> str:
    """``render config``: the config as ecspresso holds it, defaults filled in, as YAML."""
    data = dict(config.raw)
    data.update(region=config.region, cluster=config.cluster, service=config.service)
    data.setdefault("task_definition", str(config.task_definition.name))
    data["timeout"] = _go_duration_text(config.timeout)
    return yaml.safe_dump(data, sort_keys=False)


def _go_duration_text(seconds: float) -> str:
    """How Go prints a time.Duration (``10m0s``, ``1h30m0s``, ``90ms``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds else "0s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    frac = f"{seconds - whole:.3f}".rstrip("0").rstrip(".")[1:] if seconds != whole else ""
    text = f"{minutes}m{secs}{frac}s" if hours or minutes else f"{secs}{frac}s"
    return f"{hours}h{text}" if hours else text


def load_json(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    try:
        data = json.loads(render(path.read_text(), path.name, env))
    except OSError as exc:
        raise RenderError(f"failed to read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise RenderError(f"failed to parse {path}: {exc}") from None
    if not isinstance(data, dict):
        raise RenderError(f"{path} is not a JSON object")
    return data


def task_definition_input(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The register_task_definition arguments from either accepted file shape (ecspresso takes
    both the describe-task-definition output and the register input)."""
    inner = definition.get("taskDefinition", definition)
    return {k: v for k, v in inner.items() if k not in DESCRIBED_ONLY}


def load_task_definition(config: Config, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    td = task_definition_input(
        load_json(config.task_definition, os.environ if env is None else env)
    )
    if not td.get("family"):
        raise RenderError(f"family is required in {config.task_definition}")
    return td


def comparable(value: Any) -> Any:
    """Drops what ECS fills in by itself (empty lists, nulls, cpu 0) and sorts named lists."""
    if isinstance(value, dict):
        out = {k: comparable(v) for k, v in value.items()}
        if out.get("cpu") == 0 and "image" in out:
            del out["cpu"]
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        items = [comparable(v) for v in value]
        if items and all(isinstance(i, dict) and "name" in i for i in items):
            items.sort(key=lambda i: str(i["name"]))
        return items
    return value


def unified_diff(
    remote: Mapping[str, Any] | None, local: Mapping[str, Any], remote_name: str, local_name: str
) -> str:
    """ecspresso's task definition diff: remote (ECS) first, the rendered file second."""
    before = task_definition_input(remote) if remote else None
    return definition_diff(before, task_definition_input(local), remote_name, local_name)


def definition_diff(
    remote: Mapping[str, Any] | None, local: Mapping[str, Any], remote_name: str, local_name: str
) -> str:
    """A unified diff of two definitions after dropping what ECS fills in by itself."""
    before = _lines(comparable(remote)) if remote is not None else []
    after = _lines(comparable(local))
    return "".join(difflib.unified_diff(before, after, remote_name, local_name))


def service_diff(
    remote: Mapping[str, Any] | None, local: Mapping[str, Any], local_name: str
) -> str:
    """The service definition's diff: the remote service seen through the local file's keys."""
    wanted = {k: v for k, v in local.items() if k not in SERVICE_SET_BY_ECSPRESSO}
    seen = {k: remote[k] for k in wanted if k in remote} if remote else None
    name = str(remote.get("serviceArn", "")) if remote else ""
    return definition_diff(seen, wanted, name, local_name)


def _lines(value: Any) -> list[str]:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").splitlines(keepends=True)
