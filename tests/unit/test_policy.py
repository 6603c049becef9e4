"""Policy: roles from global, model and environment bindings; admin everywhere; groups count."""

from __future__ import annotations

import pytest

from bot.config.loading import settings_from_data
from bot.config.settings import Settings
from bot.domain.access import Role
from bot.policy import Action, Actor, decide, groups_that_matter, roles_of


@pytest.fixture
def settings() -> Settings:
    return settings_from_data(
        {
            "roles": {"admin": ["U0EVE"], "viewer": ["S0EVERYONE"]},
            "models": {
                "fraud": {
                    "channel": "#ml-fraud",
                    "roles": {"trainer": ["U0ALICE"], "deployer": ["S0MLENG"]},
                    "environments": {
                        "stg": {},
                        "prod": {
                            "approvals": 1,
                            "approvers": ["S0APPROVERS"],
                            "roles": {"deployer": ["U0CAROL"]},
                        },
                    },
                },
                "churn": {"channel": "#ml-churn"},
            },
        }
    )


def test_model_bindings_do_not_leak_to_other_models(settings: Settings) -> None:
    alice = Actor("U0ALICE")
    assert decide(settings, alice, Action.TRAIN_START, "fraud").allowed
    assert not decide(settings, alice, Action.TRAIN_START, "churn").allowed


def test_environment_bindings_apply_to_that_environment_only(settings: Settings) -> None:
    carol = Actor("U0CAROL")
    assert decide(settings, carol, Action.DEPLOY_START, "fraud", "prod").allowed
    assert not decide(settings, carol, Action.DEPLOY_START, "fraud", "stg").allowed


def test_group_membership_grants_roles(settings: Settings) -> None:
    outsider = Actor("U0BOB")
    member = Actor("U0BOB", frozenset({"S0MLENG", "S0APPROVERS"}))
    assert not decide(settings, outsider, Action.LOCK, "fraud", "prod").allowed
    assert decide(settings, member, Action.LOCK, "fraud", "prod").allowed
    assert decide(settings, member, Action.DEPLOY_APPROVE, "fraud", "prod").allowed
    assert not decide(settings, member, Action.DEPLOY_APPROVE, "fraud", "stg").allowed


def test_admin_holds_every_role_everywhere(settings: Settings) -> None:
    assert roles_of(settings, Actor("U0EVE"), "churn", "prod") == set(Role)
    assert decide(settings, Actor("U0EVE"), Action.FREEZE, None).allowed


def test_viewer_sees_but_does_not_act(settings: Settings) -> None:
    viewer = Actor("U0DAVE", frozenset({"S0EVERYONE"}))
    assert decide(settings, viewer, Action.DEPLOY_VIEW, "churn").allowed
    denial = decide(settings, viewer, Action.DEPLOY_START, "churn", "prod")
    assert not denial.allowed
    assert denial.reason == "needs the deployer role on churn/prod to deploy there"


def test_only_named_groups_are_resolved(settings: Settings) -> None:
    assert groups_that_matter(settings) == {"S0EVERYONE", "S0MLENG", "S0APPROVERS"}
