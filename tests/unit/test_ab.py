"""A/B pieces without I/O: the config's checks, the guard's judgement, the card."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.config.ab import AbConfig, AbGuardConfig, CustomMetric
from bot.config.loading import settings_from_data
from bot.domain.ab import AbChange, AbState, ChangeState, Experiment, GuardReading
from bot.errors import ConfigError
from bot.services.ab.readings import breached, judge
from bot.views.ab import Guarding, Prompt, ab_card

ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
AB = {
    "b_env": "prod-b",
    "rule_arn": ARN + "listener-rule/app/ml-alb/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee",
    "target_group_a": ARN + "targetgroup/fraud-a/73e2d6bc24d8a067",
    "target_group_b": ARN + "targetgroup/fraud-b/2453ed029918f21f",
}
AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def settings(prod_ab: dict[str, Any], **prod: Any) -> Any:
    envs = {
        "prod": {"cluster": "c", "service": "a", "approvers": ["S0APPROVERS"], "ab": prod_ab}
        | prod,
        "prod-b": {"cluster": "c", "service": "b"},
    }
    return settings_from_data({"models": {"fraud": {"channel": "#f", "environments": envs}}})


def test_a_valid_setup_derives_cloudwatchs_load_balancer() -> None:
    ab = settings(AB).models["fraud"].environments["prod"].ab
    assert ab.lb_dimension == "app/ml-alb/50dc6c495c0c9188"
    assert ab.needs_approval(10, 50) is False  # approvals_above defaults to 50
    assert ab.needs_approval(10, 51) is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"listener_arn": ARN + "listener/app/x/1/2"}, "exactly one of listener_arn and rule_arn"),
        ({"target_group_b": AB["target_group_a"]}, "must differ"),
        ({"b_env": "stg"}, "ab.b_env: must name another environment of fraud (prod-b)"),
        ({"b_env": "prod"}, "ab.b_env: must name another environment"),
        ({"target_group_a": "fraud-a"}, "target_group_a"),
        ({"default_weight": 101}, "default_weight: must be an integer >= 0 and <= 100, got 101"),
    ],
)
def test_bad_setups_are_config_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings(AB | change)
    assert message in str(err.value)


def test_a_custom_metric_needs_a_limit() -> None:
    with pytest.raises(ValueError, match="needs `min` or `max`"):
        CustomMetric(name="drift", namespace="n", metric="m")


def test_raises_above_the_share_need_approval_decreases_never() -> None:
    ab = AbConfig.model_validate(AB | {"approvals_above": 20, "approvals": 1})
    assert ab.needs_approval(10, 21) and ab.needs_approval(0, 100)
    assert not ab.needs_approval(10, 20) and not ab.needs_approval(50, 30)


GUARD = AbGuardConfig(
    min_requests=20,
    max_5xx_rate_delta=0.01,
    max_latency_ratio=1.5,
    custom=[
        CustomMetric(name="acc", namespace="n", metric="m", min=-0.02),
        CustomMetric(name="drift", namespace="n", metric="d", compare="b", max=0.3),
        CustomMetric(name="ratio", namespace="n", metric="r", compare="b_over_a", min=0.9),
    ],
)


def test_judge_compares_b_with_a_on_every_check() -> None:
    values = {
        "a_requests": 1000.0, "a_errors": 5.0, "a_latency": 0.1,
        "b_requests": 100.0, "b_errors": 3.0, "b_latency": 0.2,
        "c0_a": 0.93, "c0_b": 0.90, "c1_a": None, "c1_b": 0.5, "c2_a": 2.0, "c2_b": 1.9,
    }  # fmt: skip
    readings = {r.name: r for r in judge(GUARD, values)}

    assert readings["5xx rate"].value == pytest.approx(0.025) and readings["5xx rate"].breached
    assert readings["latency"].value == pytest.approx(2.0) and readings["latency"].breached
    assert readings["acc"].value == pytest.approx(-0.03) and readings["acc"].breached
    assert readings["drift"].value == 0.5 and readings["drift"].breached
    assert readings["ratio"].value == pytest.approx(0.95) and not readings["ratio"].breached
    assert "5xx rate: A 0.50% · B 3.00% → B - A +2.50 pt (limit ≤ +1.00 pt)" in breached(
        list(readings.values())
    )


def test_too_little_traffic_or_no_data_never_breaches() -> None:
    values = {"a_requests": 1000.0, "b_requests": 5.0, "b_errors": 5.0, "b_latency": 9.0}
    readings = {r.name: r for r in judge(GUARD, values)}

    assert readings["5xx rate"].note == "B served 5 requests, fewer than 20"
    assert readings["latency"].note == "no data"
    assert not any(r.breached for r in readings.values())


def test_a_without_traffic_compares_b_with_no_errors() -> None:
    readings = judge(GUARD, {"b_requests": 100.0, "b_errors": 2.0})
    assert readings[0].a is None and readings[0].value == pytest.approx(0.02)
    assert readings[0].breached


def experiment(**changes: Any) -> Experiment:
    base = Experiment(
        7, "fraud", "prod", "prod-b", AbState.RUNNING, "U0ALICE", AT, weight=10, run_b=2,
        image_b="abc123", image_a="fraud:v1", weight_a=90, weight_b=10,
    )  # fmt: skip
    return base.__class__(**{**base.__dict__, **changes})


def test_the_card_shows_both_sides_readings_history_and_the_prompt() -> None:
    reading = GuardReading("5xx rate", "5xx", 0.001, 0.05, 0.049, high=0.01, breached=True)
    e = experiment(readings=[reading], breaches=1, checked_at=AT)
    history = [
        AbChange(1, 7, AT, "U0ALICE", "start", detail="run #2 to B"),
        AbChange(2, 7, AT, "U0ALICE", "set", ChangeState.AWAITING_APPROVAL, 10, 50, AT),
    ]
    card = ab_card(e, (None, None), history, Guarding(60, 3), Prompt(1, "white_check_mark", "x"))
    text = json.dumps(card.blocks, ensure_ascii=False)

    assert card.text == "fraud/prod A/B #7: running, B 10%"
    assert "A 90% · B 10% (ELBv2 weights 90/10)" in text and "`abc123`" in text
    assert ":red_circle: 5xx rate: A 0.10% · B 5.00% → B - A +4.90 pt" in text
    assert "1/3 breaches in a row" in text
    assert "asks to move B from 10% to *50%*" in text and '"ab.approve"' in text
    assert "<@U0ALICE> set B 10% → 50% · awaiting approval" in text


def test_a_card_the_guard_aborted_is_red_and_offers_nothing() -> None:
    e = experiment(state=AbState.ABORTED, weight_a=100, weight_b=0, detail="3 breaches")
    history = [
        AbChange(1, 7, AT, "U0ALICE", "set", ChangeState.REPLACED, 10, 50),
        AbChange(2, 7, AT, "guard", "guard", weight_from=10, weight_to=0, detail="3 breaches"),
    ]
    card = ab_card(e, (None, None), history, Guarding(60, 3), Prompt(1, "white_check_mark", "x"))
    text = json.dumps(card.blocks, ensure_ascii=False)

    assert text.startswith('[{"type": "section", "text": {"type": "mrkdwn", "text": ":red_circle:')
    assert "guard aborted B 10% → 0%: 3 breaches" in text and "ab.approve" not in text
