"""Who may do what where: pure functions of the role bindings in the settings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.config.models import RoleBindings
from bot.config.settings import Settings
from bot.domain.access import Role


class Action(StrEnum):
    TRAIN_START = "train.start"
    TRAIN_CANCEL = "train.cancel"
    TRAIN_VIEW = "train.view"
    DEPLOY_START = "deploy.start"
    DEPLOY_VIEW = "deploy.view"
    DEPLOY_ROLLBACK = "deploy.rollback"
    DEPLOY_APPROVE = "deploy.approve"
    LOCK = "deploy.lock"
    UNLOCK = "deploy.unlock"
    FREEZE = "deploy.freeze"
    AB_CHANGE = "ab.change"
    AB_ABORT = "ab.abort"
    OVERRIDE = "admin.override"


NEEDED: dict[Action, Role] = {
    Action.TRAIN_START: Role.TRAINER,
    Action.TRAIN_CANCEL: Role.TRAINER,
    Action.TRAIN_VIEW: Role.VIEWER,
    Action.DEPLOY_START: Role.DEPLOYER,
    Action.DEPLOY_VIEW: Role.VIEWER,
    Action.DEPLOY_ROLLBACK: Role.DEPLOYER,
    Action.DEPLOY_APPROVE: Role.APPROVER,
    Action.LOCK: Role.DEPLOYER,
    Action.UNLOCK: Role.DEPLOYER,
    Action.FREEZE: Role.ADMIN,
    Action.AB_CHANGE: Role.DEPLOYER,
    Action.AB_ABORT: Role.DEPLOYER,
    Action.OVERRIDE: Role.ADMIN,
}

VERBS: dict[Action, str] = {
    Action.TRAIN_START: "start training runs",
    Action.TRAIN_CANCEL: "cancel training runs",
    Action.TRAIN_VIEW: "see training runs",
    Action.DEPLOY_START: "deploy",
    Action.DEPLOY_VIEW: "see deploys",
    Action.DEPLOY_ROLLBACK: "roll back",
    Action.DEPLOY_APPROVE: "approve deploys",
    Action.LOCK: "lock environments",
    Action.UNLOCK: "unlock environments",
    Action.FREEZE: "freeze deploys",
    Action.AB_CHANGE: "change A/B splits",
    Action.AB_ABORT: "abort A/B splits",
    Action.OVERRIDE: "act on someone else's lock or run",
}

IMPLIES: dict[Role, frozenset[Role]] = {
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.TRAINER: frozenset({Role.TRAINER, Role.VIEWER}),
    Role.DEPLOYER: frozenset({Role.DEPLOYER, Role.VIEWER}),
    Role.APPROVER: frozenset({Role.APPROVER, Role.VIEWER}),
    Role.ADMIN: frozenset(Role),
}
"""What holding a role grants; admin holds every role everywhere."""


@dataclass(frozen=True)
class Actor:
    """A Slack user and the user groups they belong to (resolved before deciding)."""

    user: str
    groups: frozenset[str] = frozenset()

    def matches(self, subject: str) -> bool:
        return subject == self.user or subject in self.groups


@dataclass(frozen=True)
class Decision:
    allowed: bool
    action: Action
    needed: Role
    scope: str

    @property
    def reason(self) -> str:
        verb = VERBS[self.action]
        if self.allowed:
            return f"may {verb} on {self.scope} as {self.needed}"
        return f"needs the {self.needed} role on {self.scope} to {verb} there"


def granted(bindings: RoleBindings, actor: Actor) -> set[Role]:
    held: set[Role] = set()
    for role, subjects in bindings.items():
        if any(actor.matches(s) for s in subjects):
            held |= IMPLIES[role]
    return held


def roles_of(settings: Settings, actor: Actor, model: str | None, env: str | None) -> set[Role]:
    """Roles from the global, the model's and the environment's bindings together."""
    held = granted(settings.roles, actor)
    model_cfg = settings.models.get(model) if model else None
    if model_cfg is not None:
        held |= granted(model_cfg.roles, actor)
        env_cfg = model_cfg.environments.get(env) if env else None
        if env_cfg is not None:
            held |= granted(env_cfg.roles, actor)
            if any(actor.matches(s) for s in env_cfg.approvers):
                held |= IMPLIES[Role.APPROVER]
    return held


def scope_name(model: str | None, env: str | None) -> str:
    if model and env:
        return f"{model}/{env}"
    return model or "every model"


def decide(
    settings: Settings, actor: Actor, action: Action, model: str | None, env: str | None = None
) -> Decision:
    """Whether ``actor`` may do ``action`` there; seeing across models needs viewer on one."""
    needed = NEEDED[action]
    allowed = needed in roles_of(settings, actor, model, env)
    if not allowed and model is None and needed == Role.VIEWER:
        allowed = any(needed in roles_of(settings, actor, m, None) for m in settings.models)
    return Decision(allowed=allowed, action=action, needed=needed, scope=scope_name(model, env))


def groups_that_matter(settings: Settings) -> frozenset[str]:
    """Every user group id named in a binding, so only those need resolving through Slack."""
    found: set[str] = set()
    bindings = [settings.roles]
    for model in settings.models.values():
        bindings.append(model.roles)
        for env in model.environments.values():
            bindings.append(env.roles)
            found |= {s for s in env.approvers if s.startswith("S")}
    for binding in bindings:
        for subjects in binding.values():
            found |= {s for s in subjects if s.startswith("S")}
    return frozenset(found)
