"""Cross-section checks: what no single field shows (references between environments, A/B
routes, approvals with nobody to give them). Each problem is one line with its key path."""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass

from bot.config.models import EnvironmentConfig, ModelConfig
from bot.config.settings import Settings
from bot.domain.access import Role

APPROVING_ROLES = (Role.APPROVER, Role.ADMIN)
"""Environment role bindings that let someone approve there (admin holds every role)."""
GLOB = re.compile(r"[*?\[]")


def cross_section_issues(settings: Settings) -> list[str]:
    """Every problem the per-field validation cannot see."""
    return semantic_issues(settings) + ab_issues(settings)


def semantic_issues(settings: Settings) -> list[str]:
    """Problems no single field shows: references between environments, impossible approvals."""
    issues: list[str] = []
    for name, model in settings.models.items():
        envs = model.environments
        for env_name, env in envs.items():
            path = f"models.{name}.environments.{env_name}"
            if env.requires is not None and env.requires not in envs:
                valid = ", ".join(e for e in envs if e != env_name) or "(no other environment)"
                issues.append(
                    f"{path}.requires: must name another environment of {name} "
                    f"({valid}), got {json.dumps(env.requires)}"
                )
            elif env.requires == env_name:
                issues.append(f"{path}.requires: an environment cannot require itself")
            if env.approvals > 0 and not env.approvers:
                issues.append(
                    f"{path}.approvers: {env.approvals} approval(s) needed but no "
                    "approvers are listed"
                )
    return issues


def ab_issues(settings: Settings) -> list[str]:
    """What no single field shows: B must be another plain environment of the same model."""
    issues: list[str] = []
    for name, model in settings.models.items():
        for env_name, env in model.environments.items():
            if env.ab is None:
                continue
            path = f"models.{name}.environments.{env_name}.ab"
            b = model.environments.get(env.ab.b_env)
            if b is None or env.ab.b_env == env_name:
                valid = ", ".join(e for e in model.environments if e != env_name) or "(none)"
                issues.append(
                    f"{path}.b_env: must name another environment of {name} ({valid}), "
                    f"got {json.dumps(env.ab.b_env)}"
                )
            elif b.ab is not None:
                issues.append(f"{path}.b_env: {env.ab.b_env} has an A/B setup itself")
            elif not b.cluster or not b.service:
                issues.append(f"{path}.b_env: {env.ab.b_env} needs a cluster and a service")
            else:
                issues += weaker_b_issues(name, model, env_name, env.ab.b_env)
            if env.ab.approvals_above < 100 and env.ab.approvals > 0 and not env.approvers:
                issues.append(
                    f"{path}.approvals: {env.ab.approvals} approval(s) needed above "
                    f"{env.ab.approvals_above}% but {env_name} lists no approvers"
                )
    return issues


def weaker_b_issues(name: str, model: ModelConfig, a_name: str, b_name: str) -> list[str]:
    """B serves the same users as A once it has traffic (``ab set 100`` puts all of it there), so
    its deploys face at least A's gates: as many approvals, approvers A would accept, the same
    (or a longer) chain of required environments, and only refs A allows."""
    a, b = model.environments[a_name], model.environments[b_name]
    path = f"models.{name}.environments.{b_name}"
    why = f"B of {a_name}'s A/B split"
    issues: list[str] = []
    if b.approvals < a.approvals:
        issues.append(
            f"{path}.approvals: {why} needs at least {a_name}'s {a.approvals} approval(s), "
            f"got {b.approvals}; set it to {a.approvals} or more"
        )
    extra = sorted(approving(b) - approving(a))
    if extra:
        issues.append(
            f"{path}.approvers: {why} may only be approved by {a_name}'s approvers; "
            f"{', '.join(extra)} cannot approve {a_name}; remove them (or add them to "
            f"{a_name}'s approvers)"
        )
    if a.requires is not None and a.requires not in required_chain(model, b_name):
        got = json.dumps(b.requires) if b.requires is not None else "nothing"
        issues.append(
            f"{path}.requires: {why} must require {json.dumps(a.requires)} as {a_name} does "
            f"(directly or through another environment), got {got}; set it to "
            f"{json.dumps(a.requires)}"
        )
    if a.refs:
        allowed = json.dumps(a.refs)
        if not b.refs:
            issues.append(
                f"{path}.refs: {why} must allow only refs {a_name} allows, got any ref; "
                f"set it to {allowed} (or a part of it)"
            )
        else:
            wider = [p for p in b.refs if not within(p, a.refs)]
            if wider:
                issues.append(
                    f"{path}.refs: {why} must allow only refs {a_name} allows ({allowed}); "
                    f"{json.dumps(wider)} reach(es) beyond them; use patterns of {allowed} "
                    "or exact ref names they match"
                )
    return issues


def approving(env: EnvironmentConfig) -> set[str]:
    """Subjects the environment's own settings let approve there (global and model bindings
    are the same for A and B)."""
    found = set(env.approvers)
    for role in APPROVING_ROLES:
        found |= set(env.roles.get(role, []))
    return found


def required_chain(model: ModelConfig, env_name: str) -> list[str]:
    """The environments an image must pass before ``env_name``: its ``requires``, theirs, ..."""
    chain: list[str] = []
    current = model.environments[env_name].requires
    while current is not None and current in model.environments and current not in chain:
        chain.append(current)
        current = model.environments[current].requires
    return chain


def within(pattern: str, allowed: list[str]) -> bool:
    """A ref pattern of B is within A's when it is one of A's patterns, or a plain ref name
    (no glob characters) that one of A's patterns matches."""
    if pattern in allowed:
        return True
    return not GLOB.search(pattern) and any(fnmatch.fnmatchcase(pattern, p) for p in allowed)


# ---- GitLab's pipeline-variable restriction (check-config reads it through the API) ---------

VARIABLE_ROLE_LEVELS = {"developer": 30, "maintainer": 40, "owner": 50}
"""``ci_pipeline_variables_minimum_override_role`` -> GitLab access level (``no_one_allowed``:
nobody). Reading the setting through the API needs Maintainer (40)."""
ROLE_NAMES = {10: "Guest", 20: "Reporter", 30: "Developer", 40: "Maintainer", 50: "Owner"}
VARIABLES_SETTING = "ci_pipeline_variables_minimum_override_role"
VARIABLES_WHERE = "Settings > CI/CD > Variables > Minimum role to use pipeline variables"


@dataclass(frozen=True)
class VariablesPolicy:
    """A project's pipeline-variable settings as the bot's token sees them; None where the
    token may not read them (below Maintainer) or has no role (trigger tokens only)."""

    restricted: bool | None
    minimum_role: str | None
    access_level: int | None


def role_name(level: int | None) -> str:
    return ROLE_NAMES.get(level or 0, f"access level {level}") if level else "no role"


def pipeline_variables_issue(project: str, policy: VariablesPolicy, *, trigger: bool) -> str | None:
    """Why GitLab would refuse ``/train``'s MLOPS_* and HP_* pipeline variables in
    ``project``, and what to change; None when it would take them (or the setting is unread)."""
    if not policy.restricted or policy.minimum_role is None:
        return None
    who = "the trigger token's owner" if trigger else "the bot's token user"
    level = None if trigger else policy.access_level
    needed = VARIABLE_ROLE_LEVELS.get(policy.minimum_role)
    if needed is not None and level is not None and level >= needed:
        return None
    setting = f"{VARIABLES_SETTING}: {policy.minimum_role}; {VARIABLES_WHERE}"
    if needed is None:
        refuses = f"GitLab project {project} refuses all pipeline variables ({setting})"
    else:
        refuses = (
            f"GitLab project {project} lets only {role_name(needed)}s and up set pipeline "
            f"variables ({setting})"
        )
    sends = "/train sends MLOPS_* and HP_* variables"
    if trigger:
        return f"{refuses}; {sends} with the trigger token, so {who} needs that role"
    fit = suggested_role(level)
    change = f"set it to {fit} (the bot's role) or lower" if fit else "set it to developer"
    if needed is None:
        return f"{refuses} and {sends}: an Owner of {project} must {change}"
    return (
        f"{refuses} and {who} is {role_name(level)}: give it the {role_name(needed)} role "
        f"in {project}, or {change}"
    )


def suggested_role(level: int | None) -> str | None:
    """The highest setting that still lets a member of ``level`` set variables."""
    fitting = [r for r, needed in VARIABLE_ROLE_LEVELS.items() if level and level >= needed]
    return fitting[-1] if fitting else None
