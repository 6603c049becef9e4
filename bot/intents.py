"""Typed requests parsed from /train and /deploy text: what the user asked for.

Produced by ``handlers.parsing`` (pure) and consumed by services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class Help:
    command: str  # "train" or "deploy"
    topic: str | None = None


# ---- /train ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainStart:
    model: str
    ref: str | None = None
    dataset: str | None = None
    gpus: int | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainStatus:
    model: str
    run: int


@dataclass(frozen=True)
class TrainCancel:
    model: str
    run: int


@dataclass(frozen=True)
class TrainLogs:
    model: str
    run: int


@dataclass(frozen=True)
class TrainList:
    model: str | None = None
    page: int = 1


@dataclass(frozen=True)
class TrainGpus:
    pass


TrainIntent = Help | TrainStart | TrainStatus | TrainCancel | TrainLogs | TrainList | TrainGpus


# ---- /deploy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployStart:
    model: str
    env: str
    run: int | None = None
    image: str | None = None
    force_reason: str | None = None


@dataclass(frozen=True)
class DeployDiff:
    model: str
    env: str
    run: int | None = None
    image: str | None = None


@dataclass(frozen=True)
class DeployRollback:
    model: str
    env: str
    to: int | None = None


@dataclass(frozen=True)
class DeployHistory:
    model: str
    env: str
    page: int = 1


@dataclass(frozen=True)
class DeployHealth:
    """SLOs, drift and accuracy as of the last monitoring check, and open incidents."""

    model: str
    env: str


@dataclass(frozen=True)
class DeployStatus:
    model: str
    env: str | None = None


@dataclass(frozen=True)
class LockEnv:
    model: str
    env: str
    reason: str


@dataclass(frozen=True)
class UnlockEnv:
    model: str
    env: str


@dataclass(frozen=True)
class Freeze:
    reason: str


@dataclass(frozen=True)
class Unfreeze:
    pass


class AbAction(StrEnum):
    START = "start"
    SET = "set"
    PROMOTE = "promote"
    ABORT = "abort"
    STATUS = "status"


@dataclass(frozen=True)
class AbCommand:
    model: str
    env: str
    action: AbAction
    run: int | None = None
    weight: int | None = None


DeployIntent = (
    Help
    | DeployStart
    | DeployDiff
    | DeployRollback
    | DeployHistory
    | DeployStatus
    | DeployHealth
    | LockEnv
    | UnlockEnv
    | Freeze
    | Unfreeze
    | AbCommand
)
