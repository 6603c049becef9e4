"""Reading settings: the YAML file, then the environment over it, validated into ``Settings``;
``load_settings`` reports every problem with its exact key path."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.config.checks import cross_section_issues
from bot.config.errors import describe_validation_error
from bot.config.settings import ENV_KEYS, Settings
from bot.errors import ConfigError

CONFIG_ENV = "MLOPS_BOT_CONFIG"


def read_yaml(path: Path) -> dict[str, Any]:
    """Read the config file; any problem becomes a ConfigError naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file ({exc.strerror})"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: not valid YAML{where}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of settings"])
    return data


def overlay_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Copy of ``data`` with the known environment variables applied at their key paths."""
    merged: dict[str, Any] = {**data}
    for name, path in ENV_KEYS.items():
        if name in env and env[name] != "":
            node = merged
            for key in path[:-1]:
                child = node.get(key)
                node[key] = dict(child) if isinstance(child, dict) else {}
                node = node[key]
            node[path[-1]] = env[name]
    return merged


def config_path(explicit: str | Path | None, env: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    from_env = env.get(CONFIG_ENV)
    return Path(from_env) if from_env else None


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build validated settings or raise ConfigError listing every problem."""
    environ = os.environ if env is None else env
    file = config_path(path, environ)
    data = read_yaml(file) if file else {}
    return settings_from_data(overlay_env(data, environ))


def settings_from_data(data: Mapping[str, Any]) -> Settings:
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, Settings)) from None
    issues = cross_section_issues(settings)
    if issues:
        raise ConfigError(issues)
    return settings
