"""Settings: YAML plus environment, and error lines with exact key paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config.loading import load_settings, settings_from_data
from bot.errors import ConfigError


def issues_of(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_from_data(data)
    return caught.value.issues


def model(**overrides: object) -> dict[str, object]:
    return {"models": {"fraud": {"channel": "#ml-fraud", **overrides}}}


def test_the_example_from_the_issue() -> None:
    data = model(environments={"prod": {"approvals": "two", "approvers": ["U0BOB"]}})
    assert issues_of(data) == [
        'models.fraud.environments.prod.approvals: must be an integer >= 0, got "two"'
    ]


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "server": {"port": 70000},
        "slack": {"bot_tokn": "xoxb-typo"},
        "models": {
            "fraud": {
                "channel": "not a channel!",
                "training": {"backend": "slurm"},
                "roles": {"superuser": ["U0ALICE"]},
                "environments": {"prod": {"approvers": ["bob"]}},
            }
        },
    }
    assert issues_of(data) == [
        "slack.bot_tokn: unknown key; valid keys here: api_url, app_token, bot_token, "
        "signing_secret, timeout_seconds",
        "server.port: must be an integer >= 0 and <= 65535, got 70000",
        "models.fraud.channel: must be a channel id (C...) or a channel name like #ml-fraud, "
        'got "not a channel!"',
        'models.fraud.training.backend: must be one of gitlab, kubernetes, got "slurm"',
        "models.fraud.environments.prod.approvers[0]: must be a Slack user id (U... or W...) "
        'or user group id (S...), got "bob"',
        "models.fraud.roles.superuser: unknown key; valid keys here: viewer, trainer, "
        "deployer, approver, admin",
    ]


def test_references_between_environments_are_checked() -> None:
    data = model(environments={"stg": {}, "prod": {"requires": "qa", "approvals": 1}})
    assert issues_of(data) == [
        "models.fraud.environments.prod.requires: must name another environment of fraud "
        '(stg), got "qa"',
        "models.fraud.environments.prod.approvers: 1 approval(s) needed but no approvers "
        "are listed",
    ]


def test_missing_required_key() -> None:
    assert issues_of({"models": {"fraud": {}}}) == ["models.fraud.channel: is required"]


def test_environment_wins_over_the_file_and_secrets_stay_hidden(tmp_path: Path) -> None:
    file = tmp_path / "bot.yaml"
    file.write_text("slack:\n  api_url: http://127.0.0.1:1/api/\nstore:\n  url: sqlite:///x.db\n")
    env = {
        "SLACK_BOT_TOKEN": "xoxb-very-secret",
        "MLOPS_BOT_STORE_URL": "sqlite:///y.db",
        "MLOPS_BOT_PORT": "8080",
    }
    settings = load_settings(file, env)
    assert settings.store_url == "sqlite:///y.db"
    assert settings.server.port == 8080
    assert settings.slack.api_url == "http://127.0.0.1:1/api/"
    assert "xoxb-very-secret" not in repr(settings)
    assert settings.secrets() == ["xoxb-very-secret"]


def test_a_secret_with_a_wrong_type_is_not_echoed() -> None:
    issues = issues_of({"gitlab": {"token": ["glpat-leaked"]}})
    assert issues == ["gitlab.token: must be a string, got (hidden)"]


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_settings(tmp_path / "missing.yaml", {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_settings(bad, {})
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(listy, {})


def test_default_store_is_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(None, {"MLOPS_BOT_DATA_DIR": str(tmp_path)})
    assert settings.store_url == f"sqlite:///{tmp_path / 'mlops-bot.db'}"
    assert not settings.slack.configured
