"""Examples for handlers.parsing: every subcommand of /train and /deploy, every kind of error."""

from __future__ import annotations

import re

import pytest

from bot.errors import UserInputError
from bot.intents import (
    AbAction,
    AbCommand,
    DeployDiff,
    DeployHistory,
    DeployRollback,
    DeployStart,
    DeployStatus,
    Freeze,
    Help,
    LockEnv,
    TrainCancel,
    TrainGpus,
    TrainList,
    TrainLogs,
    TrainStart,
    TrainStatus,
    Unfreeze,
    UnlockEnv,
)
from handlers.parsing import Catalog, is_valid_ref, parse_deploy, parse_train, usage

CATALOG = Catalog({"fraud": ["stg", "prod"], "churn-v2": ["dev", "stg", "prod"], "reco.x": []})
DIGEST = "sha256:" + "0123456789abcdef" * 4
MODELS = "`churn-v2`, `fraud`, `reco.x`"


def train_error(text: str) -> str:
    with pytest.raises(UserInputError) as caught:
        parse_train(text, CATALOG)
    return check_shape(str(caught.value), "train")


def deploy_error(text: str) -> str:
    with pytest.raises(UserInputError) as caught:
        parse_deploy(text, CATALOG)
    return check_shape(str(caught.value), "deploy")


def check_shape(message: str, command: str) -> str:
    """Every message ends with a help hint and echoes nothing longer than 40 characters."""
    assert re.search(rf"Try `/{command} help( [a-z]+)?`\.$", message), message
    assert "\n" not in message
    assert message.count("`") % 2 == 0
    assert all(len(quoted) <= 40 for quoted in re.findall(r"`([^`]*)`", message)), message
    return message


# ---- /train: valid ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Help("train")),
        ("   \t ", Help("train")),
        ("help", Help("train")),
        ("help gpus  now", Help("train", "gpus now")),
        ('help "unbalanced', Help("train", '"unbalanced')),
        ("fraud", TrainStart("fraud")),
        (
            "fraud ref=main dataset=v7 gpus=2 lr=0.01 epochs=10",
            TrainStart("fraud", "main", "v7", 2, {"lr": "0.01", "epochs": "10"}),
        ),
        (
            "  churn-v2    ref=feature/x-1   batch.size=32 ",
            TrainStart("churn-v2", ref="feature/x-1", params={"batch.size": "32"}),
        ),
        ("fraud ref=0123abc", TrainStart("fraud", ref="0123abc")),
        ("fraud dataset=s3://bucket/v7:2+x", TrainStart("fraud", dataset="s3://bucket/v7:2+x")),
        ("fraud gpus=64", TrainStart("fraud", gpus=64)),
        ("fraud _opt=a,b:c/d+e=f@g%h-i", TrainStart("fraud", params={"_opt": "a,b:c/d+e=f@g%h-i"})),
        ("fraud \u201clr=0.1\u201d", TrainStart("fraud", params={"lr": "0.1"})),
        ("fraud\u00a0lr=1", TrainStart("fraud", params={"lr": "1"})),
        ("fraud status 42", TrainStatus("fraud", 42)),
        ("fraud status #42", TrainStatus("fraud", 42)),
        ("fraud cancel 7", TrainCancel("fraud", 7)),
        ("fraud logs #3", TrainLogs("fraud", 3)),
        ("list", TrainList()),
        ("list reco.x", TrainList("reco.x")),
        ("gpus", TrainGpus()),
    ],
)
def test_train_parses(text: str, expected: object) -> None:
    assert parse_train(text, CATALOG) == expected


# ---- /train: errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("nope", ["Unknown model `nope`", MODELS]),
        ("Fraud", ["`Fraud`", MODELS]),
        ("ref=main", ["Missing model", "`ref=main`", MODELS]),
        ("fraud stat 4", ["`stat`", "`status`", "`cancel`", "`logs`", "`key=value`"]),
        ("fraud status", ["needs a run number", "`/train fraud status 42`", "help status"]),
        ("fraud logs abc", ["`abc`", "positive number", "`#42`"]),
        ("fraud cancel 0", ["`0`", "positive number"]),
        ("fraud status 42 43", ["Unexpected `43`", "`/train status`"]),
        ("fraud =x", ["`=x`", "`key=value`"]),
        ("fraud k=", ["`k=`", "needs a value"]),
        ("fraud lr=1 k", ["`k`", "`key=value`"]),
        ("fraud lr=1 lr=2", ["`lr`", "twice"]),
        ("fraud ref=a ref=b", ["`ref`", "twice"]),
        ("fraud ref=a..b", ["ref `a..b`", "`main`"]),
        ("fraud ref=-x", ["ref `-x`"]),
        ("fraud gpus=0", ["gpus `0`", "1 to 64"]),
        ("fraud gpus=65", ["gpus `65`", "1 to 64"]),
        ("fraud gpus=two", ["gpus `two`", "1 to 64"]),
        ("fraud dataset=v7;rm", ["dataset `v7;rm`", "`A-Za-z0-9_.:/+-`"]),
        ("fraud lr=$(reboot)", ["`lr=` value `$(reboot)`", "`A-Za-z0-9_.,:/+=@%-`"]),
        ("fraud lr=a&amp;&amp;b", ["`lr=` value `a&amp;&amp;b`"]),
        ("fraud 'lr=a b'", ["`lr=` value `a b`"]),
        ("fraud 1bad=2", ["parameter name `1bad`"]),
        ('fraud lr="0.1', ["unbalanced quote"]),
        ("fraud lr=0.1\\", ["trailing backslash"]),
        ("gpus now", ["Unexpected `now`", "`/train gpus`", "help gpus"]),
        ("list nope", ["`nope`", MODELS, "help list"]),
        ("list fraud x", ["Unexpected `x`"]),
    ],
)
def test_train_errors_name_the_token_and_the_choices(text: str, needles: list[str]) -> None:
    message = train_error(text)
    for needle in needles:
        assert needle in message, (needle, message)


def test_unknown_model_with_no_models_configured() -> None:
    with pytest.raises(UserInputError, match="no models are configured"):
        parse_train("fraud", Catalog({}))


def test_long_and_odd_tokens_are_truncated_and_sanitized() -> None:
    message = train_error("x" * 100)
    assert "x" * 39 + "…" in message
    assert "x" * 41 not in message
    message = train_error("fr`au\x07d")
    assert "`frau?d`" in message
    message = train_error(f"fraud lr={'9' * 300}")
    assert "9" * 40 not in message


def test_reserved_words_shadow_models_of_the_same_name() -> None:
    catalog = Catalog({"list": ["prod"], "gpus": ["prod"]})
    assert parse_train("list", catalog) == TrainList()
    assert parse_train("gpus", catalog) == TrainGpus()


# ---- /deploy: valid -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Help("deploy")),
        ("help ab", Help("deploy", "ab")),
        ("fraud stg", DeployStart("fraud", "stg")),
        ("fraud stg run=42", DeployStart("fraud", "stg", run=42)),
        ("fraud stg run=#42", DeployStart("fraud", "stg", run=42)),
        ("fraud prod image=v1.2.3", DeployStart("fraud", "prod", image="v1.2.3")),
        (f"fraud prod image={DIGEST}", DeployStart("fraud", "prod", image=DIGEST)),
        (
            'fraud prod run=42 force reason="hotfix for incident 12"',
            DeployStart("fraud", "prod", run=42, force_reason="hotfix for incident 12"),
        ),
        (
            "fraud prod reason=\u201cdon\u2019t wait\u201d force",
            DeployStart("fraud", "prod", force_reason="don't wait"),
        ),
        ("fraud diff stg", DeployDiff("fraud", "stg")),
        ("fraud diff prod run=7", DeployDiff("fraud", "prod", run=7)),
        ("fraud diff prod image=abc", DeployDiff("fraud", "prod", image="abc")),
        ("fraud rollback prod", DeployRollback("fraud", "prod")),
        ("fraud rollback prod to=12", DeployRollback("fraud", "prod", to=12)),
        ("fraud rollback prod to=#12", DeployRollback("fraud", "prod", to=12)),
        ("churn-v2 history dev", DeployHistory("churn-v2", "dev")),
        ("fraud status", DeployStatus("fraud")),
        ("fraud status prod", DeployStatus("fraud", "prod")),
        ('fraud lock prod reason="db migration"', LockEnv("fraud", "prod", "db migration")),
        ("fraud lock prod 'reason=  padded  '", LockEnv("fraud", "prod", "padded")),
        (
            'fraud lock prod reason="a &lt;b&gt; &amp;amp; c"',
            LockEnv("fraud", "prod", "a <b> &amp; c"),
        ),
        ("fraud unlock prod", UnlockEnv("fraud", "prod")),
        ('freeze reason="release week"', Freeze("release week")),
        ("unfreeze", Unfreeze()),
        ("fraud ab prod start run=42", AbCommand("fraud", "prod", AbAction.START, run=42)),
        (
            "fraud ab prod start weight=10% run=42",
            AbCommand("fraud", "prod", AbAction.START, run=42, weight=10),
        ),
        ("fraud ab prod set 25", AbCommand("fraud", "prod", AbAction.SET, weight=25)),
        ("fraud ab prod set 0%", AbCommand("fraud", "prod", AbAction.SET, weight=0)),
        ("fraud ab prod set 100", AbCommand("fraud", "prod", AbAction.SET, weight=100)),
        ("fraud ab prod promote", AbCommand("fraud", "prod", AbAction.PROMOTE)),
        ("fraud ab prod abort", AbCommand("fraud", "prod", AbAction.ABORT)),
        ("fraud ab prod status", AbCommand("fraud", "prod", AbAction.STATUS)),
    ],
)
def test_deploy_parses(text: str, expected: object) -> None:
    assert parse_deploy(text, CATALOG) == expected


# ---- /deploy: errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("nope stg", ["Unknown model `nope`", MODELS]),
        ("fraud", ["`/deploy fraud` needs", "`stg`, `prod`", "`diff`", "`ab`"]),
        ("fraud qa", ["`qa`", "`stg`, `prod`", "`rollback`", "`lock`"]),
        ("fraud STG", ["`STG`", "`stg`, `prod`"]),
        ("fraud diff qa", ["Unknown environment `qa`", "`fraud`", "`stg`, `prod`", "help diff"]),
        ("fraud diff", ["needs an environment", "`stg`, `prod`"]),
        ("reco.x status prod", ["`prod`", "none"]),
        ("fraud stg run=1 image=x", ["`run=`", "`image=`", "not both"]),
        ("fraud diff stg run=1 image=x", ["not both"]),
        ("fraud stg force", ["`force`", "`reason="]),
        ('fraud stg reason="x"', ["`reason=`", "`force`"]),
        ("fraud stg force force reason=x", ["`force`", "twice"]),
        ("fraud stg run=abc", ["run `abc`", "positive number"]),
        ("fraud stg image=-bad", ["image `-bad`", "`v1.2.3`"]),
        ("fraud stg image=sha256:xyz", ["image `sha256:xyz`", "`sha256:<64 hex>`"]),
        ("fraud stg tag=1", ["`tag=`", "`run=`", "`image=`", "`force`"]),
        ("fraud stg now", ["`now`", "`key=value`"]),
        ("fraud diff stg to=3", ["`to=`", "`run=`", "`image=`"]),
        ("fraud rollback prod to=x", ["deploy id `x`"]),
        ("fraud rollback prod run=3", ["`run=`", "`to=`"]),
        ("fraud history stg extra", ["Unexpected `extra`", "`/deploy history`"]),
        ("fraud status prod extra", ["Unexpected `extra`"]),
        ("fraud status qa", ["Unknown environment `qa`"]),
        ("fraud unlock", ["needs an environment"]),
        ("fraud lock prod", ["`/deploy lock` needs `reason="]),
        ('fraud lock prod reason=""', ["`reason=`", "needs a value"]),
        ('fraud lock prod reason="   "', ["needs `reason="]),
        (f'fraud lock prod reason="{"x" * 301}"', ["301", "300"]),
        ('fraud lock prod reason="a\nb"', ["one line"]),
        ('fraud lock prod reason="a\u202eb"', ["control characters"]),
        ('fraud lock prod reason="oops', ["unbalanced quote"]),
        ("fraud ab prod", ["Missing A/B action", "`start`", "`set`", "`promote`", "`abort`"]),
        ("fraud ab prod go", ["`go`", "`start`", "`status`", "help ab"]),
        ("fraud ab qa start", ["Unknown environment `qa`"]),
        ("fraud ab prod start", ["`run=<id>`"]),
        ("fraud ab prod start run=1 weight=150", ["weight `150`", "0 to 100"]),
        ("fraud ab prod set", ["needs a weight"]),
        ("fraud ab prod set 101", ["weight `101`", "0 to 100"]),
        ("fraud ab prod set 10 20", ["Unexpected `20`"]),
        ("fraud ab prod set -5", ["weight `-5`"]),
        ("fraud ab prod promote now", ["Unexpected `now`"]),
        ("freeze", ["`/deploy freeze` needs `reason="]),
        ("freeze reason=x extra", ["`extra`", "`key=value`"]),
        ("freeze why=x", ["`why=`", "`reason=`"]),
        ("unfreeze now", ["Unexpected `now`", "help unfreeze"]),
    ],
)
def test_deploy_errors_name_the_token_and_the_choices(text: str, needles: list[str]) -> None:
    message = deploy_error(text)
    for needle in needles:
        assert needle in message, (needle, message)


def test_subcommands_shadow_environments_of_the_same_name() -> None:
    catalog = Catalog({"fraud": ["status", "prod"]})
    assert parse_deploy("fraud status", catalog) == DeployStatus("fraud")
    assert parse_deploy("fraud ab status promote", catalog) == AbCommand(
        "fraud", "status", AbAction.PROMOTE
    )


# ---- usage and refs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("train", ["ref=", "dataset=", "gpus=", "status", "cancel", "logs", "list", "help"]),
        (
            "deploy",
            [
                "run=",
                "image=",
                "force",
                "diff",
                "rollback",
                "history",
                "status",
                "lock",
                "unlock",
                "ab",
                "start",
                "set",
                "promote",
                "abort",
                "freeze",
                "unfreeze",
                "help",
            ],
        ),
    ],
)
def test_usage_lists_every_subcommand(command: str, words: list[str]) -> None:
    text = usage(command)
    for word in words:
        assert word in text
    assert all(line.count("`") % 2 == 0 for line in text.splitlines())


def test_usage_of_an_unknown_command_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="nope"):
        usage("nope")


@pytest.mark.parametrize(
    "ref",
    [
        "main",
        "feature/x-1",
        "v1.2.3",
        "release-2024.01",
        "abc1234",
        "0" * 40,
        "a" * 255,
        "HEAD",
        "a@b",
        "caf\u00e9",
        "x.lockx",
        "a/b.c",
    ],
)
def test_valid_refs(ref: str) -> None:
    assert is_valid_ref(ref)


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "@",
        "a..b",
        "a@{b",
        "a b",
        "a~b",
        "a^b",
        "a:b",
        "a?b",
        "a*b",
        "a[b",
        "a\\b",
        "a/",
        "a.",
        "a.lock",
        "x/y.lock/z",
        "a//b",
        ".a",
        "a/.b",
        "/a",
        "-x",
        "a" * 256,
        "a\x00b",
        "a\x7fb",
        "a\tb",
        "a\u00a0b",
        "a\u2028b",
    ],
)
def test_invalid_refs(ref: str) -> None:
    assert not is_valid_ref(ref)


def test_an_option_without_a_value_says_it_needs_one() -> None:
    with pytest.raises(UserInputError, match=r"`ref=` needs a value after the `=`"):
        parse_train("fraud ref=", CATALOG)


def test_help_on_a_topic_shows_only_that_topic() -> None:
    text = usage("deploy", "ab")
    lines = text.splitlines()[1:]
    assert lines and all(" ab " in line for line in lines)
    assert "rollback" not in text
    assert usage("deploy", "nonsense").startswith("No help topic `nonsense`")
