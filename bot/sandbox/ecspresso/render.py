"""What the ecspresso stand-in reads: ecspresso.yml and the JSON definitions it names, rendered
with ecspresso's ``{{ must_env `X` }}`` / ``{{ env `X` `default` }}`` template functions."""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
ARGUMENT = re.compile(r"`([^`]*)`|\"((?:[^\"\\]|\\.)*)\"")
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
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

    @property
    def name(self) -> str:
        """How ecspresso prefixes its log lines: ``service/cluster``."""
        return f"{self.service}/{self.cluster}"


def render(text: str, source: str, env: Mapping[str, str]) -> str:
    """Replaces every template action; unknown functions and missing must_env fail."""

    def action(match: re.Match[str]) -> str:
        words = match.group(1).split(None, 1)
        func = words[0] if words else ""
        args = [
            a if a is not None else b
            for a, b in ARGUMENT.findall(words[1] if len(words) > 1 else "")
        ]
        where = f'template: {source}: executing "{source}"'
        if func == "must_env" and len(args) == 1:
            if args[0] not in env:
                missing = f"environment variable {args[0]} is not defined"
                raise RenderError(f"{where}: error calling must_env: {missing}")
            return env[args[0]]
        if func == "env" and len(args) in (1, 2):
            return env.get(args[0]) or (args[1] if len(args) == 2 else "")
        raise RenderError(f'template: {source}: function "{func}" not defined')

    return ACTION.sub(action, text)


def load_config(path: str, env: Mapping[str, str]) -> Config:
    config_path = Path(path)
    try:
        raw = yaml.safe_load(render(config_path.read_text(), config_path.name, env)) or {}
    except OSError as exc:
        raise RenderError(f"failed to load config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RenderError(f"failed to parse config file {path}: {exc}") from None
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
    )


def duration(text: str) -> float:
    """Go's time.ParseDuration for the units ecspresso configs use (``10m``, ``1h30m``, ``90s``)."""
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise RenderError(f'time: invalid duration "{text}"')
    return sum(float(n) * SECONDS[u] for n, u in parts)


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
    before = _lines(comparable(task_definition_input(remote))) if remote else []
    after = _lines(comparable(task_definition_input(local)))
    return "".join(difflib.unified_diff(before, after, remote_name, local_name))


def _lines(value: Any) -> list[str]:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").splitlines(keepends=True)
