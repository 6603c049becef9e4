"""`mlops-bot check-config` and `serve` against the ecspresso stand-in, run as an operator runs
them: the version range, each local deploy config rendered by `ecspresso render config` and
compared with the bot's cluster and service, and the `external` plugin refused unless allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.sandbox.stand_ins import ecspresso_stand_in

ROOT = Path(__file__).resolve().parents[2]
SECRET = "xoxb-1234-never-printed"


def bot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MLOPS_BOT_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
        env=base | (env or {}),
        check=False,
    )


def bot_config(tmp_path: Path, *, executable: str = "", extra: str = "") -> Path:
    """One model, ``fraud``, deploying stg to ml-stg/fraud-api from ``tmp_path/deploy/stg``."""
    path = tmp_path / "bot.yaml"
    path.write_text(
        f"ecspresso:\n  path: {executable or ecspresso_stand_in()}\n{extra}"
        "models:\n  fraud:\n    channel: '#ml-fraud'\n"
        f"    deploy:\n      source: {{kind: local, path: '{tmp_path}/deploy/{{env}}'}}\n"
        "    environments:\n      stg: {cluster: ml-stg, service: fraud-api}\n"
    )
    return path


def ecspresso_config(tmp_path: Path, cluster: str, service: str, plugins: str = "") -> None:
    directory = tmp_path / "deploy" / "stg"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ecspresso.yml").write_text(
        f"region: us-east-1\ncluster: {cluster}\nservice: {service}\n"
        "task_definition: ecs-task-def.json\n" + plugins
    )


def test_a_config_that_deploys_what_the_bot_verifies_passes(tmp_path: Path) -> None:
    ecspresso_config(tmp_path, "'{{ must_env `ECS_CLUSTER` }}'", "'{{ must_env `ECS_SERVICE` }}'")

    done = bot("--config", str(bot_config(tmp_path)), "check-config")

    assert done.returncode == 0, done.stderr
    assert "configuration is valid" in done.stdout


def test_a_config_that_deploys_elsewhere_is_refused_with_the_key_path(tmp_path: Path) -> None:
    ecspresso_config(tmp_path, "ml-prod", "'{{ must_env `ECS_SERVICE` }}'")

    done = bot("--config", str(bot_config(tmp_path)), "check-config")

    assert done.returncode == 1
    line = next(x for x in done.stderr.splitlines() if "models." in x)
    assert line.startswith("models.fraud.environments.stg.cluster: the ecspresso config ")
    assert line.endswith("deploys cluster 'ml-prod', not 'ml-stg'")


def test_a_config_that_fails_to_render_is_refused(tmp_path: Path) -> None:
    ecspresso_config(tmp_path, "'{{ must_env `NOT_GIVEN` }}'", "x")

    done = bot("--config", str(bot_config(tmp_path)), "check-config")

    assert done.returncode == 1
    assert "models.fraud.environments.stg: ecspresso render config failed" in done.stderr
    assert "NOT_GIVEN" in done.stderr


def test_the_external_plugin_is_refused_unless_allowed(tmp_path: Path) -> None:
    plugin = "plugins:\n  - name: external\n    config: {command: ['./fetch-secrets']}\n"
    ecspresso_config(tmp_path, "ml-stg", "fraud-api", plugin)

    refused = bot("--config", str(bot_config(tmp_path)), "check-config")
    allowed_config = bot_config(tmp_path, extra="  allow_external_plugin: true\n")
    allowed = bot("--config", str(allowed_config), "check-config")

    assert refused.returncode == 1
    assert "models.fraud.environments.stg: the ecspresso config" in refused.stderr
    assert "ecspresso.allow_external_plugin: true" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr


def test_serve_refuses_an_ecspresso_outside_the_supported_range(tmp_path: Path) -> None:
    v3 = tmp_path / "ecspresso-v3"
    v3.write_text("#!/bin/sh\necho 'ecspresso v3.0.0'\n")
    v3.chmod(0o755)
    env = {
        "SLACK_BOT_TOKEN": SECRET,
        "SLACK_SIGNING_SECRET": "shh",
        "MLOPS_BOT_STORE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "MLOPS_BOT_PORT": "0",
    }

    done = bot("--config", str(bot_config(tmp_path, executable=str(v3))), "serve", env=env)

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"mlops-bot: not starting: ecspresso.path: ecspresso at {v3} is v3.0.0; the bot "
        "supports >= v2.4.0 and < v3.0.0 (its flags and exit codes are checked for v2)"
    ]
    assert SECRET not in done.stdout + done.stderr
