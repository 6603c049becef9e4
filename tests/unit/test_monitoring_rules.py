"""Pure parts of monitoring: `/deploy <model> health <env>` parsing, the SLO judgement and
the drift finding's wording."""

from __future__ import annotations

import math

import pytest

from bot.config.monitoring import CloudWatchSlos, CustomSlo
from bot.domain.monitoring.drift import DriftReport, FeatureDrift
from bot.domain.monitoring.incidents import Status
from bot.domain.monitoring.records import Skipped, decode
from bot.errors import UserInputError
from bot.intents import DeployHealth
from bot.services.monitoring.quality import drift_finding
from bot.services.monitoring.slos import judge_slos, slo_queries
from handlers.parsing import Catalog, parse_deploy

CATALOG = Catalog({"fraud": ["stg", "prod"]})
TG = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/fraud-prod/0123456789abcdef"


def slos(**overrides: object) -> CloudWatchSlos:
    given: dict[str, object] = {
        "target_group": TG, "load_balancer": "app/ml/50dc6c495c0c9188",
        "latency_seconds": 0.5, "max_5xx_rate": 0.01, "min_requests": 100,
    }  # fmt: skip
    return CloudWatchSlos.model_validate(given | overrides)


def test_health_parses_and_names_a_missing_or_unknown_environment() -> None:
    assert parse_deploy("fraud health prod", CATALOG) == DeployHealth("fraud", "prod")
    with pytest.raises(UserInputError, match="qa"):
        parse_deploy("fraud health qa", CATALOG)
    with pytest.raises(UserInputError):
        parse_deploy("fraud health", CATALOG)
    with pytest.raises(UserInputError):
        parse_deploy("fraud health prod now", CATALOG)


def test_slos_breach_above_their_limits_and_missing_data_is_unknown() -> None:
    found = judge_slos(slos(), {"latency": 0.75, "requests": 1000.0, "errors": 5.0})
    assert [(f.kind, f.status, f.text) for f in found] == [
        ("latency", Status.BREACHED, "0.75 s > SLO 0.5 s (+50%)"),
        ("5xx", Status.OK, "0.50% of 1000 requests <= 1.00%"),
    ]
    quiet = judge_slos(slos(), {"latency": None, "requests": 40.0, "errors": 40.0})
    assert [f.status for f in quiet] == [Status.UNKNOWN, Status.UNKNOWN]
    assert quiet[1].text == "40 requests, fewer than 100 to judge"


def test_custom_slos_are_queried_with_their_statistic_and_judged_on_both_sides() -> None:
    auc = CustomSlo(name="auc", namespace="ml/fraud", metric="OnlineAUC", stat="p10", min=0.8,
                    dimensions={"TG": "{target_group}"})  # fmt: skip
    config = slos(custom=[auc], latency_stat="p99")
    queries = {q.key: q for q in slo_queries(config)}
    assert queries["latency"].stat == "p99"
    assert queries["c0"].stat == "p10"
    assert queries["c0"].dimensions == (("TG", "targetgroup/fraud-prod/0123456789abcdef"),)
    [_, _, judged] = judge_slos(config, {"c0": 0.7, "requests": 0.0})
    assert (judged.kind, judged.status, judged.text) == (
        "slo:auc",
        Status.BREACHED,
        "0.7 < min 0.8",
    )


def test_drift_names_the_drifted_features_and_untested_windows_are_unknown() -> None:
    amount = FeatureDrift("amount", 2000, True, 90.0, 9, 1e-12, 0.001, True, 0.31, 0.2,
                          "> 69.93: 10% -> 31%")  # fmt: skip
    country = FeatureDrift("country", 2000, True, 2.0, 3, 0.5, 0.01, False)
    report = DriftReport(2000, 0.01, [amount, country])
    finding = drift_finding(report)
    assert finding.status == Status.BREACHED
    assert finding.text == (
        "1 of 2 drifted over 2,000 predictions: amount (p=1e-12 <= 0.001, PSI 0.31; "
        "> 69.93: 10% -> 31%)"
    )
    tiny = DriftReport(3, 0.01, [FeatureDrift("amount", 3, False, note="too few rows (3)")])
    assert drift_finding(tiny).status == Status.UNKNOWN


def test_records_json_refuses_are_still_read_the_way_json_reads_them() -> None:
    skipped = Skipped()
    record = decode(
        b'{"time": 1, "features": {"a": NaN, "b": 123456789012345678901234}}', "k:1", skipped
    )
    assert record is not None and math.isnan(record["features"]["a"])
    assert record["features"]["b"] == 123456789012345678901234
    assert decode(b"\xff{not json", "k:2", skipped) is None
    assert decode(b"[1, 2]", "k:3", skipped) is None
    assert skipped.lines() == [
        "1 lines that are not JSON (first: k:2)",
        "1 lines that are not JSON objects (first: k:3)",
    ]
