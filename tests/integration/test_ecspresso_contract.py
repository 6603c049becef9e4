"""ecspresso's command line (reference/ecspresso/cli.json, vendored in tests/contracts) against
the stand-in and the adapter: the stand-in accepts exactly the real flags of each subcommand
it plays and refuses the rest as kong does; every argument list the adapter builds parses
against the real table; the child gets the AWS credential chain and proxies, nothing else."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bot.config.loading import load_settings
from bot.sandbox.ecspresso import flags as standin_flags
from bot.sandbox.stand_ins import ecspresso_stand_in
from bot.wiring import aws_env
from integrations.ecspresso import Ecspresso, common_args, deploy_args, inner_timeout

ROOT = Path(__file__).resolve().parents[2]
VENDORED = ROOT / "tests" / "contracts" / "ecspresso" / "cli.json"
REFERENCE = ROOT.parent / "shared" / "reference" / "ecspresso" / "cli.json"
CLI: dict[str, Any] = json.loads(VENDORED.read_text())
STANDIN = ecspresso_stand_in()
PARSE_ERROR = re.compile(
    r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[ERROR\] FAILED\. failed to parse args: .+$", re.M
)
PLAYED = sorted(standin_flags.COMMAND_FLAGS)


# ---- the table, read from cli.json -------------------------------------------------------------


def long_name(entry: dict[str, Any]) -> str:
    """``--name`` of a cli.json flag entry (``-h, --help`` -> ``help``)."""
    return str(entry["flag"]).split("--", 1)[1]


def kind(entry: dict[str, Any]) -> str:
    """cli.json's type text as a parser kind: bool, int32, int64, int, enum, duration, ..."""
    text = str(entry["type"])
    for word in ("bool", "int32", "int64", "enum", "duration", "map", "[]string"):
        if text.startswith(word):
            return {"[]string": "list"}.get(word, word)
    return "int" if text.startswith("int") else "string"


def real_flags(command: str) -> dict[str, dict[str, Any]]:
    """Every flag valid with ``command``: its own and the global ones, by long name."""
    entries = [*CLI["global_flags"], *CLI["commands"][command]["flags"]]
    return {long_name(e): e for e in entries}


def parse_problems(command: str, args: list[str]) -> list[str]:
    """What kong would refuse in ``args`` (the words after the subcommand), per cli.json."""
    table, problems = real_flags(command), []
    words = list(args)
    while words:
        word = words.pop(0)
        if not word.startswith("--"):
            problems.append(f"positional {word!r}")
            continue
        name, eq, value = word[2:].partition("=")
        entry = table.get(name)
        negated = entry is None and name.startswith("no-") and name[3:] in table
        entry = table.get(name[3:]) if negated else entry
        if entry is None or (negated and not entry.get("negatable")):
            problems.append(f"unknown flag --{name}")
        elif kind(entry) == "bool":
            if eq and value not in ("true", "false"):
                problems.append(f"--{name}={value}: not a bool")
        else:
            value = value if eq else (words.pop(0) if words else "")
            problems += value_problems(entry, value)
    return problems


def value_problems(entry: dict[str, Any], value: str) -> list[str]:
    if kind(entry) == "enum" and value not in entry["enum"]:
        return [f"{entry['flag']}: {value!r} is not one of {entry['enum']}"]
    if kind(entry) in ("int32", "int64", "int") and not re.fullmatch(r"-?\d+", value):
        return [f"{entry['flag']}: {value!r} is not an integer"]
    if kind(entry) == "duration" and not re.fullmatch(r"(\d+(\.\d+)?(ns|us|ms|s|m|h))+", value):
        return [f"{entry['flag']}: {value!r} is not a Go duration"]
    return []


def test_the_vendored_table_is_the_reference() -> None:
    if REFERENCE.exists():
        assert VENDORED.read_bytes() == REFERENCE.read_bytes()


@pytest.mark.parametrize("command", ["", *PLAYED])
def test_the_stand_ins_table_is_the_real_one(command: str) -> None:
    real = CLI["global_flags"] if not command else CLI["commands"][command]["flags"]
    ours = standin_flags.GLOBAL_FLAGS if not command else standin_flags.COMMAND_FLAGS[command]
    shape = {
        long_name(e): (kind(e), bool(e.get("negatable")), tuple(e.get("enum", ())), e.get("env"))
        for e in real
    }
    assert {f.name: (f.kind, f.negatable, f.enum, f.env) for f in ours} == shape


def test_the_stand_in_plays_real_commands_only() -> None:
    assert set(PLAYED) <= set(CLI["commands"])
    assert set(standin_flags.REAL_COMMANDS) == set(CLI["commands"])
    assert {"deploy", "rollback", "diff", "revisions", "version", "render"} <= set(PLAYED)
    targets = CLI["commands"]["render"]["args"][0]["enum"]
    assert list(standin_flags.RENDER_TARGETS) == targets


# ---- the stand-in, run as a process ------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config the stand-in can load (it is never deployed: runs use the ``fail`` mode)."""
    (tmp_path / "ecs-task-def.json").write_text('{"family": "app", "containerDefinitions": []}')
    (tmp_path / "ecs-service-def.json").write_text('{"desiredCount": 1}')
    path = tmp_path / "ecspresso.yml"
    path.write_text(
        "region: us-east-1\ncluster: c1\nservice: app\ntask_definition: ecs-task-def.json\n"
        "service_definition: ecs-service-def.json\n"
    )
    (tmp_path / "vars.env").write_text("A=1\n")
    return path


def standin(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "MLOPS_BOT_PYTHON": sys.executable, "AWS_REGION": "x"}
    return subprocess.run(
        [STANDIN, *args], capture_output=True, text=True, env=base | env, timeout=30, check=False
    )


def accepted(command: str, args: list[str], config: Path) -> bool:
    """True when the stand-in parsed ``command args`` (it then fails on purpose, or prints the
    version); False on ecspresso's parse error; anything else fails the test."""
    extra = [] if "--config" in " ".join(args) else [f"--config={config}"]
    targets = ["config"] if command == "render" else []
    done = standin(command, *targets, *extra, *args, MLOPS_ECSPRESSO_STANDIN_MODE="fail")
    if PARSE_ERROR.search(done.stderr):
        assert done.returncode == 1 and done.stdout == "", done
        return False
    if command == "version":
        assert (done.returncode, done.stdout) == (0, "ecspresso v2.4.5\n"), done
    else:
        assert done.returncode == 1 and "injected by MLOPS_ECSPRESSO" in done.stderr, done
    return True


def valid_value(entry: dict[str, Any], config: Path) -> str:
    values = {
        "config": str(config),
        "envfile": str(config.parent / "vars.env"),
        "rollback-events": "DEPLOYMENT_FAILURE,DEPLOYMENT_STOP_ON_ALARM",
        "ext-str": "A=1;B=2",
        "ext-code": "A=1",
    }
    if long_name(entry) in values:
        return values[long_name(entry)]
    by_kind = {"enum": str(entry.get("enum", [""])[0]), "duration": "1m30s", "list": "x"}
    return by_kind.get(kind(entry), "3" if kind(entry).startswith("int") else "x")


def flag_cases(command: str, config: Path) -> Iterator[tuple[list[str], bool]]:
    """(arguments, accepted?) for each flag of ``command`` (its own; the global ones for
    ``deploy``), as the real CLI would answer."""
    own = CLI["commands"][command]["flags"] + (CLI["global_flags"] if command == "deploy" else [])
    for entry in own:
        name = long_name(entry)
        if name == "help":
            continue
        if kind(entry) == "bool":
            yield [f"--{name}"], True
            yield [f"--no-{name}"], bool(entry.get("negatable"))
        else:
            value = valid_value(entry, config)
            yield [f"--{name}={value}"], True
            yield [f"--{name}", value], True
        yield [f"--{name[:-1]}"], False  # an abbreviation
        if kind(entry) in ("int32", "int64", "int", "duration"):
            yield [f"--{name}=abc"], False
        if kind(entry) == "enum":
            yield [f"--{name}=nope"], False
    yield ["--definitely-not-a-flag"], False
    yield ["stray"], False


@pytest.mark.parametrize("command", PLAYED)
def test_the_stand_in_accepts_exactly_the_real_flags(command: str, config: Path) -> None:
    cases = list(flag_cases(command, config))
    with ThreadPoolExecutor(max_workers=8) as pool:  # one process per case: run them together
        answers = list(pool.map(lambda case: accepted(command, case[0], config), cases))
    assert [case for case, answer in zip(cases, answers, strict=True) if answer != case[1]] == []


def test_global_flags_go_before_or_after_the_subcommand(config: Path) -> None:
    assert accepted("deploy", ["--debug", "--timeout", "5m"], config)
    before = standin(
        "--debug", f"--config={config}", "deploy", "--dry-run", MLOPS_ECSPRESSO_STANDIN_MODE="fail"
    )
    assert before.returncode == 1 and "injected" in before.stderr
    wrong_place = standin("--dry-run", "deploy", f"--config={config}")
    assert wrong_place.returncode == 1 and "unknown flag --dry-run" in wrong_place.stderr


def test_kong_messages_for_abbreviations_unknown_flags_enums_and_ints(config: Path) -> None:
    cases = {
        ("deploy", "--rev=3"): "unknown flag --rev",
        ("deploy", "--no-dry-run"): "unknown flag --no-dry-run",
        (
            "revisions",
            "--output=yaml",
        ): '--output must be one of "json","table","tsv" but got "yaml"',
        ("deploy", "--tasks=many"): '--tasks: expected a valid 32 bit int but got "many"',
        ("deploy", "--tasks=4294967296"): "expected a valid 32 bit int",
        ("deploy", "--timeout=soon"): 'time: invalid duration "soon"',
        ("render", "everything"): "<targets>: must be one of",
        ("create",): "unexpected argument create",
    }
    for args, message in cases.items():
        done = standin(*args, f"--config={config}")
        assert done.returncode == 1, args
        assert PARSE_ERROR.search(done.stderr) and message in done.stderr, done.stderr


@pytest.mark.parametrize("args", [[], ["help"], ["-h"], ["--help"], ["deploy", "--help"]])
def test_help_and_no_arguments_print_usage_and_exit_0(args: list[str]) -> None:
    done = standin(*args)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("Usage: ecspresso")


def test_the_enum_of_rollback_events_is_checked(config: Path) -> None:
    done = standin("deploy", f"--config={config}", "--rollback-events=DEPLOYMENT_FAILURE,OOPS")
    assert done.returncode == 1 and "[ERROR] FAILED. invalid rollback events: OOPS" in done.stderr


# ---- the adapter's argument lists ----------------------------------------------------------------


def adapter_lists() -> list[list[str]]:
    limit = 900.0
    return [
        deploy_args("/c/ecspresso.yml", limit),
        deploy_args("/c/ecspresso.yml", limit, revision=7),
        deploy_args("/c/ecspresso.yml", limit, keep_service=True),
        deploy_args("/c/ecspresso.yml", limit, revision=7, keep_service=True),
        ["rollback", *common_args("/c/ecspresso.yml", limit), "--no-deregister-task-definition"],
        ["diff", *common_args("/c/ecspresso.yml", 120.0)],
        ["revisions", *common_args("/c/ecspresso.yml", 120.0), "--output=json"],
        ["render", *common_args("/c/ecspresso.yml", 120.0), "config"],
        ["version"],
    ]


def test_the_checker_refuses_what_kong_refuses() -> None:
    assert parse_problems("deploy", ["--skip-task-def"]) == ["unknown flag --skip-task-def"]
    assert parse_problems("deploy", ["--no-dry-run"]) == ["unknown flag --no-dry-run"]
    assert parse_problems("deploy", ["--wait-until=stable"]) == ["unknown flag --wait-until"]
    assert parse_problems("revisions", ["--output", "yaml"])
    assert parse_problems("deploy", ["--timeout=900"])


def fake_ecspresso(tmp_path: Path) -> str:
    """An executable that prints its arguments and environment as JSON, nothing else."""
    fake = tmp_path / "ecspresso"
    fake.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ)}))\n"
    )
    fake.chmod(0o755)
    return str(fake)


async def test_every_argument_list_the_adapter_builds_parses_against_the_real_table(
    tmp_path: Path,
) -> None:
    fake = Ecspresso(fake_ecspresso(tmp_path), deploy_timeout=900, timeout=120)
    deploy = json.loads((await fake.deploy("/c/e.yml", {}, print)).output)["argv"]
    revision = json.loads((await fake.deploy("/c/e.yml", {}, print, revision=3)).output)["argv"]
    kept = await fake.deploy("/c/e.yml", {}, print, revision=3, keep_service=True)
    keep = json.loads(kept.output)["argv"]
    rollback = json.loads((await fake.rollback("/c/e.yml", {}, print)).output)["argv"]
    diff = json.loads(await fake.diff("/c/e.yml", {}))["argv"]
    render = json.loads(await fake.render_config("/c/e.yml", {}))["argv"]
    revisions = (await fake.revisions("/c/e.yml", {}))[0]["argv"]
    version = json.loads(await fake.version())["argv"]
    seen = [deploy, revision, keep, rollback, diff, render, revisions, version]

    for args in [*seen, *adapter_lists()]:
        command, rest = args[0], args[1:]
        if command == "render":
            assert rest[-1] in CLI["commands"]["render"]["args"][0]["enum"], args
            rest = rest[:-1]
        assert parse_problems(command, rest) == [], args
    assert keep[-2:] == ["--revision=3", "--no-update-service"]
    assert "--skip-task-definition" not in revision and "--revision=3" in revision
    assert (render[0], render[-1], version) == ("render", "config", ["version"])
    assert all("--timeout=108s" in a for a in (diff, render, revisions))
    assert all("--timeout=870s" in a for a in (deploy, revision, keep, rollback))


def test_ecspresso_gets_a_deadline_below_the_bots() -> None:
    assert inner_timeout(900) == "870s"
    assert inner_timeout(120) == "108s"
    assert inner_timeout(6) == "4s"
    assert inner_timeout(2.5) == "1250ms"
    assert "--timeout=870s" in deploy_args("/c/e.yml", 900)


async def test_the_child_gets_the_credential_chain_and_proxies_but_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/run/secrets/pods.eks.amazonaws.com/t",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-token",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/token",
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/bot",
        "AWS_PROFILE": "bot",
        "AWS_CA_BUNDLE": "/etc/ssl/corp.pem",
        "AWS_STS_REGIONAL_ENDPOINTS": "regional",
        "AWS_ENDPOINT_URL_ECS": "http://127.0.0.1:1",
        "HTTPS_PROXY": "http://proxy:3128",
        "https_proxy": "http://proxy:3128",
        "NO_PROXY": "169.254.170.2,.internal",
        "no_proxy": "169.254.170.2",
        "HTTP_PROXY": "http://proxy:3128",
    }
    for key, value in handed.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-never-to-ecspresso")
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-never-to-ecspresso")
    (tmp_path / "bot.yaml").write_text("aws: {region: eu-west-1}\n")
    settings = load_settings(tmp_path / "bot.yaml", {})
    adapter = Ecspresso(fake_ecspresso(tmp_path), base_env=aws_env(settings))

    env = json.loads(await adapter.version())["env"]

    assert {k: env.get(k) for k in handed} == handed
    assert env["AWS_REGION"] == "eu-west-1"
    assert "SLACK_BOT_TOKEN" not in env and "GITLAB_TOKEN" not in env


async def test_secrets_in_the_childs_environment_never_reach_the_logs(tmp_path: Path) -> None:
    secret = "wJalrXUtnFEMI-K7MDENG-never-log-me"
    adapter = Ecspresso(fake_ecspresso(tmp_path), base_env={"AWS_SECRET_ACCESS_KEY": secret})
    with capture_logs() as logs:
        result = await adapter.deploy("/c/e.yml", {"IMAGE_DIGEST": "sha256:0"}, lambda _: None)
    assert result.ok and logs
    assert secret not in repr(logs)
