"""Access resolves user groups through the Slack API (the stand-in) and caches them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.config.loading import load_settings
from bot.config.settings import Settings
from bot.errors import NotAllowed
from bot.policy import Action
from bot.sandbox.runner import sample_config
from bot.sandbox.slack import SlackStandIn
from bot.sandbox.stand_ins import slack_stand_in as stand_in
from bot.services.access import Access
from integrations.slack import SlackDirectory, build_web_client


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    server = stand_in()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def settings() -> Settings:
    return load_settings(sample_config(), {})


async def test_group_members_become_approvers(slack: SlackStandIn, settings: Settings) -> None:
    client = build_web_client(
        "xoxb-sandbox-token", base_url=slack.base_url, timeout=5, metrics=None
    )
    access = Access(settings, SlackDirectory(client, ttl=60))
    decision = await access.check("U0BOB", Action.DEPLOY_APPROVE, "fraud", "prod")
    assert decision.allowed
    with pytest.raises(NotAllowed, match="needs the approver role on fraud/prod"):
        await access.check("U0ALICE", Action.DEPLOY_APPROVE, "fraud", "prod")
    assert len(slack.calls_to("usergroups.users.list")) == 1


async def test_an_unreachable_directory_denies(slack: SlackStandIn, settings: Settings) -> None:
    client = build_web_client("xoxb-wrong", base_url=slack.base_url, timeout=5, metrics=None)
    access = Access(settings, SlackDirectory(client, ttl=60))
    with pytest.raises(NotAllowed):
        await access.check("U0BOB", Action.DEPLOY_APPROVE, "fraud", "prod")
