"""How the bot reaches outside systems: Slack, GitLab, AWS, Kubernetes (secrets are SecretStr)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from bot.config.base import Strict


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
