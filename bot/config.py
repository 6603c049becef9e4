"""Typed settings: one YAML file plus environment variables, read once by the CLI.

Secrets (tokens, signing secrets) normally come from the environment; they are ``SecretStr`` so
they never print. ``load_settings`` reports every problem with its exact key path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from bot.config_ab import AbConfig
from bot.config_deploy import DeployGates, EcspressoSettings, ModelDeploy
from bot.config_errors import describe_validation_error, semantic_issues
from bot.config_training import TrainingConfig, TrainingSettings
from bot.config_webhooks import WebhookSettings
from bot.domain import Role
from bot.errors import ConfigError

SUBJECT_PATTERN = r"^[UWS][A-Z0-9]{2,}$"
Subject = Annotated[str, Field(pattern=SUBJECT_PATTERN)]
"""A Slack user id (U..., W...) or a Slack user group id (S...)."""

RoleBindings = dict[Role, list[Subject]]

CONFIG_ENV = "MLOPS_BOT_CONFIG"
ENV_KEYS: dict[str, tuple[str, ...]] = {
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
    "SLACK_API_URL": ("slack", "api_url"),
    "GITLAB_URL": ("gitlab", "url"),
    "GITLAB_TOKEN": ("gitlab", "token"),
    "GITLAB_WEBHOOK_SECRET": ("webhooks", "secret"),
    "AWS_REGION": ("aws", "region"),
    "AWS_ENDPOINT_URL": ("aws", "endpoint_url"),
    "KUBECONFIG": ("kubernetes", "kubeconfig"),
    "MLOPS_BOT_STORE_URL": ("store", "url"),
    "MLOPS_BOT_DATA_DIR": ("data_dir",),
    "MLOPS_BOT_HOST": ("server", "host"),
    "MLOPS_BOT_PORT": ("server", "port"),
    "MLOPS_BOT_LOG_LEVEL": ("log_level",),
}
"""Environment variables and the settings key each one sets (they win over the YAML file)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackSettings(Strict):
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    api_url: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @property
    def configured(self) -> bool:
        """True when a real workspace is set up (HTTP mode or Socket Mode)."""
        return self.bot_token is not None and (
            self.signing_secret is not None or self.app_token is not None
        )

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None


class GitLabSettings(Strict):
    url: str = "https://gitlab.com"
    token: SecretStr | None = None
    trigger_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class AwsSettings(Strict):
    region: str = "us-east-1"
    endpoint_url: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class KubernetesSettings(Strict):
    """How the bot reaches Kubernetes: a kubeconfig file, or in-cluster when unset."""

    kubeconfig: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class StoreSettings(Strict):
    url: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class ServerSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)


class NotifierSettings(Strict):
    edit_interval_seconds: float = Field(default=1.0, ge=0, le=60)


class PolicySettings(Strict):
    group_cache_seconds: float = Field(default=300.0, ge=0)


class EnvironmentConfig(DeployGates):
    approvals: int = Field(default=0, ge=0)
    approvers: list[Subject] = Field(default_factory=list)
    requires: str | None = None
    roles: RoleBindings = Field(default_factory=dict)
    ab: AbConfig | None = None


class ModelConfig(Strict):
    channel: str = Field(pattern=r"^(C[A-Z0-9]{2,}|#?[a-z0-9][a-z0-9_-]{0,79})$")
    gitlab_project: str | None = None
    owners: str | None = Field(default=None, pattern=r"^S[A-Z0-9]{2,}$")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    environments: dict[str, EnvironmentConfig] = Field(default_factory=dict)
    roles: RoleBindings = Field(default_factory=dict)
    deploy: ModelDeploy = Field(default_factory=ModelDeploy)


class Settings(Strict):
    data_dir: Path = Path(".mlops-bot")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    slack: SlackSettings = Field(default_factory=SlackSettings)
    gitlab: GitLabSettings = Field(default_factory=GitLabSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    notifier: NotifierSettings = Field(default_factory=NotifierSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    ecspresso: EcspressoSettings = Field(default_factory=EcspressoSettings)
    roles: RoleBindings = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)

    @property
    def store_url(self) -> str:
        """The configured store, or a SQLite file under the data dir."""
        if self.store.url:
            return self.store.url
        return f"sqlite:///{(self.data_dir / 'mlops-bot.db').resolve()}"

    def secrets(self) -> list[str]:
        """Every secret value, so that output can be scrubbed of them."""
        values = [self.slack.bot_token, self.slack.signing_secret, self.slack.app_token]
        values.append(self.gitlab.token)
        values.extend(self.gitlab.trigger_tokens.values())
        values.append(self.webhooks.secret)
        values.extend(self.webhooks.project_secrets.values())
        return [v.get_secret_value() for v in values if v is not None]


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
        raise ConfigError(describe_validation_error(exc)) from None
    issues = semantic_issues(settings)
    if issues:
        raise ConfigError(issues)
    return settings
