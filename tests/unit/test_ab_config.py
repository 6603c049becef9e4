"""An A/B split cannot weaken prod: B's environment has at least A's gates, else check-config
refuses with one line per problem naming the key path, what is wrong and what would be right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config.ab import AbConfig
from bot.config.loading import load_settings, settings_from_data
from bot.errors import ConfigError

ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
AB = {
    "b_env": "prod-b",
    "rule_arn": ARN + "listener-rule/app/ml-alb/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee",
    "target_group_a": ARN + "targetgroup/fraud-a/73e2d6bc24d8a067",
    "target_group_b": ARN + "targetgroup/fraud-b/2453ed029918f21f",
}
PROD = {
    "cluster": "ml-prod",
    "service": "fraud-api",
    "approvals": 2,
    "approvers": ["S0APPROVERS"],
    "requires": "stg",
    "refs": ["main", "v*"],
}
PATH = "models.fraud.environments.prod-b"


def data(b: dict[str, Any], a: dict[str, Any] | None = None) -> dict[str, Any]:
    envs = {
        "stg": {"cluster": "ml-stg", "service": "fraud-api"},
        "prod": (a or PROD) | {"ab": AB},
        "prod-b": {"cluster": "ml-prod", "service": "fraud-api-b"} | b,
    }
    return {"models": {"fraud": {"channel": "#ml-fraud", "environments": envs}}}


def problems(b: dict[str, Any], a: dict[str, Any] | None = None) -> list[str]:
    try:
        settings_from_data(data(b, a))
    except ConfigError as err:
        return err.issues
    return []


def b_like_prod(**change: Any) -> dict[str, Any]:
    b = {k: v for k, v in PROD.items() if k not in ("cluster", "service")} | change
    return {k: v for k, v in b.items() if v is not None}


def test_b_with_prods_gates_or_stricter_passes() -> None:
    assert problems(b_like_prod()) == []
    assert problems(b_like_prod(approvals=3, refs=["main"])) == []
    assert problems(b_like_prod(refs=["v2.1.0", "main"])) == []  # names A's globs match


def test_b_may_require_an_environment_that_requires_prods() -> None:
    settings = data(b_like_prod(requires="canary"))
    settings["models"]["fraud"]["environments"]["canary"] = {"requires": "stg"}
    settings_from_data(settings)
    settings_from_data(data(b_like_prod(requires="prod")))  # stg, then prod itself


def test_every_weaker_gate_is_one_line_with_the_key_path_and_the_fix() -> None:
    found = problems({"approvals": 1, "approvers": ["S0APPROVERS", "U0MALLORY"]})
    assert found == [
        f"{PATH}.approvals: B of prod's A/B split needs at least prod's 2 approval(s), got 1; "
        "set it to 2 or more",
        f"{PATH}.approvers: B of prod's A/B split may only be approved by prod's approvers; "
        "U0MALLORY cannot approve prod; remove them (or add them to prod's approvers)",
        f'{PATH}.requires: B of prod\'s A/B split must require "stg" as prod does (directly '
        'or through another environment), got nothing; set it to "stg"',
        f"{PATH}.refs: B of prod's A/B split must allow only refs prod allows, got any ref; "
        'set it to ["main", "v*"] (or a part of it)',
    ]


@pytest.mark.parametrize(
    ("b", "wrong"),
    [
        (b_like_prod(approvals=0), ".approvals: B of prod's A/B split needs at least"),
        (b_like_prod(refs=["*"]), ".refs: B of prod's A/B split must allow only refs prod allows"),
        (b_like_prod(refs=["main", "v*", "feature/*"]), '["feature/*"] reach(es) beyond them'),
        (b_like_prod(refs=["v1*"]), '["v1*"] reach(es) beyond them'),
        (b_like_prod(requires=None), '.requires: B of prod\'s A/B split must require "stg"'),
        (b_like_prod(roles={"approver": ["U0MALLORY"]}), "U0MALLORY cannot approve prod"),
        (b_like_prod(roles={"admin": ["U0MALLORY"]}), "U0MALLORY cannot approve prod"),
    ],
)
def test_each_weaker_gate_is_refused(b: dict[str, Any], wrong: str) -> None:
    found = problems(b)
    assert len(found) == 1 and found[0].startswith(PATH) and wrong in found[0], found


def test_an_unrestricted_prod_leaves_b_free() -> None:
    a = {"cluster": "ml-prod", "service": "fraud-api", "approvers": ["S0APPROVERS"]}
    assert problems({}, a) == []


def test_check_config_refuses_a_weaker_b(tmp_path: Path) -> None:
    """What `mlops-bot check-config` and `serve` read: the file through loading.py."""
    config = tmp_path / "bot.yaml"
    config.write_text(yaml.safe_dump(data(b_like_prod(approvals=1))))
    with pytest.raises(ConfigError) as err:
        load_settings(config, env={})
    assert err.value.issues == [
        f"{PATH}.approvals: B of prod's A/B split needs at least prod's 2 approval(s), got 1; "
        "set it to 2 or more"
    ]


def test_raising_b_past_half_needs_approval_by_default() -> None:
    ab = AbConfig.model_validate(AB)
    assert ab.approvals_above == 50 and ab.approvals == 1
    assert ab.needs_approval(10, 100) and ab.needs_approval(50, 51)
    assert not ab.needs_approval(10, 50)


def test_weight_approvals_need_someone_to_give_them() -> None:
    a = {"cluster": "ml-prod", "service": "fraud-api"}
    assert problems({}, a) == [
        "models.fraud.environments.prod.ab.approvals: 1 approval(s) needed above 50% but prod "
        "lists no approvers"
    ]
