"""Settings of the GitLab webhook intake: secrets, retention and routing rules."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_BRANCH = "$default"
"""A ref pattern that stands for the project's default branch, whatever it is called."""
PIPELINE_STATUSES = (
    "created waiting_for_resource preparing pending running success failed canceled canceling "
    "skipped manual scheduled"
)
OTHER_STATUSES = "opened closed merged locked blocked"  # merge request states, deployment status
STATUSES = frozenset(f"{PIPELINE_STATUSES} {OTHER_STATUSES}".split())


class EventKind(StrEnum):
    """The GitLab events the bot posts about (others are stored as ignored)."""

    PIPELINE = "pipeline"
    JOB = "job"
    MERGE_REQUEST = "merge_request"
    DEPLOYMENT = "deployment"


@dataclass(frozen=True)
class RouteFacts:
    """What routing looks at in one event."""

    kind: EventKind
    status: str
    project: str
    ref: str
    default_branch: str = ""
    source: str = ""


class Route(BaseModel):
    """Events of a matching project, ref, kind and status are posted to ``channel``.

    ``project`` and ``ref`` are glob patterns (``ml/*``, ``release/*``); ``ref: $default`` is the
    project's default branch. Empty ``statuses`` match every status. For pipelines and jobs the
    status is the pipeline's (or the job's) GitLab status word; for merge requests the state
    (opened, merged, closed); for deployments the deployment status. ``sources`` narrows
    pipelines by what started them (``merge_request_event``, ``push``, ``schedule``, ...).
    A merge request's ref is its target branch.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(default="*", min_length=1)
    ref: str = Field(default="*", min_length=1)
    kinds: list[EventKind] = Field(default_factory=lambda: [EventKind.PIPELINE], min_length=1)
    statuses: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    channel: str = Field(pattern=r"^(C[A-Z0-9]{2,}|#?[a-z0-9][a-z0-9_-]{0,79})$")

    @field_validator("statuses")
    @classmethod
    def known_statuses(cls, statuses: list[str]) -> list[str]:
        words = [s.strip().lower() for s in statuses if s.strip()]
        unknown = [w for w in words if w not in STATUSES]
        if unknown:
            raise ValueError(f"unknown status {unknown[0]!r}; valid: {', '.join(sorted(STATUSES))}")
        return words

    def matches(self, facts: RouteFacts) -> bool:
        if facts.kind not in self.kinds or not fnmatchcase(facts.project, self.project):
            return False
        if self.statuses and facts.status.lower() not in self.statuses:
            return False
        if self.sources and facts.source not in self.sources:
            return False
        ref, default_branch = facts.ref, facts.default_branch
        if self.ref == DEFAULT_BRANCH:
            return bool(default_branch) and ref == default_branch
        return fnmatchcase(ref, self.ref)


class WebhookSettings(BaseModel):
    """``secret`` is checked for every project without its own entry in ``project_secrets``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr | None = None
    project_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    signing_token: SecretStr | None = None
    signature_tolerance_seconds: float = Field(default=300.0, ge=10, le=3600)
    retention_hours: float = Field(default=72.0, gt=0, le=24 * 90)
    state_retention_days: float = Field(default=30.0, gt=0, le=3650)
    routes: list[Route] = Field(default_factory=list)
    concurrency: int = Field(default=8, ge=1, le=64)

    def secret_for(self, project: str | None) -> SecretStr | None:
        """The token a delivery about ``project`` must carry (None: nothing is accepted)."""
        if project is not None and project in self.project_secrets:
            return self.project_secrets[project]
        return self.secret

    def channels_for(self, facts: RouteFacts) -> list[str]:
        """Every channel a matching rule names, in rule order, without repeats."""
        return list(dict.fromkeys(r.channel for r in self.routes if r.matches(facts)))
