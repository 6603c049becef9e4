"""The mlops-bot command as an operator runs it: check-config, migrate, audit, serve."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRET = "xoxb-1234-do-not-print-me"


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MLOPS_BOT_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=base | (env or {}),
        check=False,
    )


def sample_with_ecspresso(tmp_path: Path, executable: Path) -> Path:
    config = tmp_path / "bot.yaml"
    sample = (ROOT / "bot" / "sandbox" / "sample-config.yaml").read_text()
    config.write_text(f"ecspresso:\n  path: {executable}\n{sample}")
    return config


def test_check_config_accepts_the_sample(tmp_path: Path) -> None:
    stand_in = ROOT / "bot" / "sandbox" / "bin" / "ecspresso"
    result = run(
        "--config",
        str(sample_with_ecspresso(tmp_path, stand_in)),
        "check-config",
        env={"SLACK_BOT_TOKEN": SECRET, "SLACK_SIGNING_SECRET": "shh-signing"},
    )
    assert result.returncode == 0, result.stderr
    assert "configuration is valid: models churn, fraud; Slack: HTTP" in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_check_config_wants_a_recent_ecspresso(tmp_path: Path) -> None:
    missing = run(
        "--config", str(sample_with_ecspresso(tmp_path, tmp_path / "nope")), "check-config"
    )
    assert missing.returncode == 1
    assert "ecspresso.path: ecspresso at" in missing.stderr and "cannot be run" in missing.stderr
    old = tmp_path / "old-ecspresso"
    old.write_text("#!/bin/sh\necho 'ecspresso v2.3.0'\n")
    old.chmod(0o755)
    outdated = run("--config", str(sample_with_ecspresso(tmp_path, old)), "check-config")
    assert outdated.returncode == 1
    assert "v2.3.0" in outdated.stderr and ">= v2.4.0" in outdated.stderr


def test_check_config_reports_every_error_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "models:\n  fraud:\n    channel: '#ml-fraud'\n    environments:\n"
        "      prod: {approvals: two}\n  churn: {}\n"
        f"gitlab:\n  token: [{SECRET}]\n"
    )
    result = run("--config", str(bad), "check-config", env={"SLACK_BOT_TOKEN": SECRET})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "gitlab.token: must be a string, got (hidden)",
        'models.fraud.environments.prod.approvals: must be an integer >= 0, got "two"',
        "models.churn.channel: is required",
        "3 problem(s) in the configuration",
    ]
    assert SECRET not in result.stdout + result.stderr


def test_serve_refuses_an_invalid_config_with_the_same_messages(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: high}\n")
    result = run("--config", str(bad), "serve")
    assert result.returncode == 1
    assert 'server.port: must be an integer >= 0 and <= 65535, got "high"' in result.stderr


def test_serve_refuses_an_unmigrated_store_then_migrate_fixes_it(tmp_path: Path) -> None:
    env = {
        "MLOPS_BOT_STORE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "SLACK_BOT_TOKEN": SECRET,
        "SLACK_SIGNING_SECRET": "shh-signing",
        "MLOPS_BOT_PORT": "0",
    }
    refused = run("serve", env=env)
    assert refused.returncode == 1
    assert "run `mlops-bot migrate`" in refused.stderr
    migrated = run("migrate", env=env)
    assert migrated.returncode == 0
    assert "store schema at version" in migrated.stdout
    assert SECRET not in refused.stderr + migrated.stdout + migrated.stderr


def test_serve_collects_garbage_once_started(tmp_path: Path) -> None:
    """Start-up holds the collector off (bot.entry); serving must turn it back on."""
    port = free_port()
    env = {
        "MLOPS_BOT_STORE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "SLACK_BOT_TOKEN": SECRET,
        "SLACK_SIGNING_SECRET": "shh-signing",
        "MLOPS_BOT_PORT": str(port),
    }
    assert run("migrate", env=env).returncode == 0
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MLOPS_BOT_"))}
    serving = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        cwd=ROOT,
        env=base | env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = gen0_collections(port)
        for _ in range(100):  # each request leaves garbage behind
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).close()
        assert gen0_collections(port) > first
    finally:
        serving.terminate()
        serving.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gen0_collections(port: int, wait: float = 30) -> float:
    """python_gc_collections_total for generation 0 from the bot's /metrics, once it answers."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                text = answer.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    line = next(ln for ln in text.splitlines() if ln.startswith("python_gc_collections_total"))
    assert 'generation="0"' in line
    return float(line.split()[-1])


def test_audit_prints_lines_and_json(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    env = {"MLOPS_BOT_STORE_URL": f"sqlite:///{db}"}
    assert run("migrate", env=env).returncode == 0
    seeded = subprocess.run(
        [sys.executable, "-c", SEED.format(db=str(db))],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    lines = run("audit", "--model", "fraud", env=env)
    assert lines.returncode == 0, lines.stderr
    assert "U0ALICE" in lines.stdout and "deploy.lockenv" in lines.stdout
    assert "churn" not in lines.stdout
    as_json = run("audit", "--json", "--since", "1h", env=env)
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(r["actor"], r["outcome"]) for r in rows] == [("U0ALICE", "ok"), ("U0BOB", "denied")]
    bad_since = run("audit", "--since", "yesterday", env=env)
    assert bad_since.returncode == 1
    assert "use an ISO time" in bad_since.stderr


SEED = """
import asyncio
from bot.clock import utcnow
from bot.domain.access import AuditEvent, Outcome
from bot.store import Store

async def main():
    store = Store.from_url("sqlite:///{db}")
    for actor, model, action, outcome in (("U0ALICE", "fraud", "deploy.lockenv", Outcome.OK),
                                          ("U0BOB", "churn", "deploy.unlockenv", Outcome.DENIED)):
        await store.record_audit(AuditEvent(actor=actor, action=action, target=model + "/prod",
            outcome=outcome, correlation_id="c1", at=utcnow(), model=model))
    await store.close()

asyncio.run(main())
"""


def kubernetes_config(tmp_path: Path) -> Path:
    config = tmp_path / "k8s.yaml"
    config.write_text(
        "store:\n"
        f"  url: sqlite:///{tmp_path / 'k8s.db'}\n"
        "models:\n"
        "  fraud:\n"
        "    channel: '#ml-fraud'\n"
        "    training:\n"
        "      backend: kubernetes\n"
        "      kubernetes:\n"
        "        image: registry.example.com/fraud-train:1\n"
    )
    return config


def test_a_missing_kubeconfig_is_one_clear_line_for_check_config_and_serve(
    tmp_path: Path,
) -> None:
    config = kubernetes_config(tmp_path)
    env = {
        "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"),
        "SLACK_BOT_TOKEN": SECRET,
        "SLACK_SIGNING_SECRET": "shh-signing",
        "MLOPS_BOT_PORT": "0",
    }
    checked = run("check-config", "--config", str(config), env=env)
    assert checked.returncode == 1
    assert f"kubernetes.kubeconfig: no file at {tmp_path / 'no-such-kubeconfig'}" in checked.stderr
    assert "Traceback" not in checked.stderr
    assert run("migrate", "--config", str(config), env=env).returncode == 0
    served = run("serve", "--config", str(config), env=env)
    assert served.returncode == 1
    assert "kubernetes.kubeconfig: no file at" in served.stderr
    assert "Traceback" not in served.stderr


def test_config_env_and_flag_after_the_subcommand_both_work(tmp_path: Path) -> None:
    config = kubernetes_config(tmp_path)
    env = {"KUBECONFIG": str(tmp_path / "missing")}
    by_env = run("check-config", env=env | {"MLOPS_BOT_CONFIG": str(config)})
    after = run("check-config", "--config", str(config), env=env)
    before = run("--config", str(config), "check-config", env=env)
    assert by_env.stderr == after.stderr == before.stderr
    assert "kubernetes.kubeconfig" in by_env.stderr


def test_serve_falling_back_to_the_sandbox_honours_mlops_bot_config(tmp_path: Path) -> None:
    """No Slack workspace: `serve` starts the sandbox, on the config MLOPS_BOT_CONFIG names."""
    data = yaml.safe_load((ROOT / "bot" / "sandbox" / "sample-config.yaml").read_text())
    data["models"]["envmodel"] = data["models"]["churn"]
    config = tmp_path / "env.yaml"
    config.write_text(yaml.safe_dump(data))
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        input="/train list envmodel\nquit\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MLOPS_BOT_"))}
        | {"MLOPS_BOT_CONFIG": str(config)},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "starting the local sandbox" in result.stderr
    assert "*Active runs*" in result.stdout and "Unknown model" not in result.stdout
