"""The root of the settings: every section, the models, and what is derived from them.

Secrets (tokens, signing secrets) normally come from the environment; they are ``SecretStr`` so
they never print. Reading and validating the file is ``bot.config.loading``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bot.config.base import Strict
from bot.config.connections import AwsSettings, GitLabSettings, KubernetesSettings, SlackSettings
from bot.config.deploy import EcspressoSettings
from bot.config.models import ModelConfig, RoleBindings
from bot.config.runtime import NotifierSettings, PolicySettings, ServerSettings, StoreSettings
from bot.config.training import TrainingSettings
from bot.config.webhooks import WebhookSettings

ENV_KEYS: dict[str, tuple[str, ...]] = {
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
    "SLACK_API_URL": ("slack", "api_url"),
    "GITLAB_URL": ("gitlab", "url"),
    "GITLAB_TOKEN": ("gitlab", "token"),
    "GITLAB_WEBHOOK_SECRET": ("webhooks", "secret"),
    "GITLAB_WEBHOOK_SIGNING_TOKEN": ("webhooks", "signing_token"),
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
        values.append(self.webhooks.signing_token)
        values.extend(self.webhooks.project_secrets.values())
        return [v.get_secret_value() for v in values if v is not None]
