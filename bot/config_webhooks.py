"""Settings of the GitLab webhook intake: secrets, retention and routing rules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr | None = None
    project_secrets: dict[str, SecretStr] = Field(default_factory=dict)
