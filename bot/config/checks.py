"""Cross-section checks: what no single field shows (references between environments, A/B
routes, approvals with nobody to give them). Each problem is one line with its key path."""

from __future__ import annotations

import json

from bot.config.settings import Settings


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
            if env.ab.approvals_above < 100 and env.ab.approvals > 0 and not env.approvers:
                issues.append(
                    f"{path}.approvals: {env.ab.approvals} approval(s) needed above "
                    f"{env.ab.approvals_above}% but {env_name} lists no approvers"
                )
    return issues
