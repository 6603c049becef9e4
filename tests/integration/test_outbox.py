"""The Slack outbox against the Slack stand-in over real HTTP: retries, adoption, replies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from slack_sdk.errors import SlackApiError

from bot.notifier import Notifier
from bot.reconciler import Backoff, Reconciler, card_metadata
from bot.sandbox.slack import SlackStandIn, SlackUser
from bot.services.cards import Cards
from bot.store import Store
from bot.views.blocks import Message
from integrations.slack import SlackCards, build_web_client, retry_handlers
from tests.helpers import eventually

TOKEN = "xoxb-outbox-secret"


@dataclass
class Bot:
    """The pieces of a bot that the outbox needs; ``restart`` replaces them on the same store."""

    store: Store
    slack: SlackStandIn
    notifier: Notifier
    cards: Cards
    loop: asyncio.Task[None]

    @classmethod
    def started(cls, store: Store, slack: SlackStandIn) -> Bot:
        client = build_web_client(
            TOKEN,
            base_url=slack.base_url,
            timeout=2,
            metrics=None,
            handlers=retry_handlers(rate_limited=0, server_errors=0, connection_errors=0),
        )
        backoff = Backoff(first=0.05, cap=0.2)
        outbox = Reconciler(
            store.cards, SlackCards(client), interval=0.05, lease=30, backoff=backoff
        )
        notifier = Notifier(client, edit_interval=0.05, outbox=outbox)
        loop = asyncio.get_running_loop().create_task(outbox.run())
        return cls(store, slack, notifier, Cards(store, notifier), loop)

    async def stop(self) -> None:
        self.loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.loop

    async def restart(self) -> Bot:
        await self.stop()
        return Bot.started(self.store, self.slack)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    stand_in = SlackStandIn(
        bot_token=TOKEN,
        users=[SlackUser("U1", "alice")],
        usergroups={},
        channels={"C1": "ml-fraud"},
    )
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def bot(tmp_path: Path, slack: SlackStandIn) -> AsyncIterator[Bot]:
    store = Store.from_url(f"sqlite:///{tmp_path / 'bot.db'}")
    await store.migrate()
    running = Bot.started(store, slack)
    yield running
    await running.stop()
    await store.close()


def shown(slack: SlackStandIn, text: str) -> list[str]:
    return [m.ts for m in slack.messages if m.text == text]


async def test_a_card_carries_its_key_as_message_metadata(bot: Bot, slack: SlackStandIn) -> None:
    await bot.cards.publish("run:7", "#ml-fraud", Message("run 7 queued"))
    await bot.notifier.flush()
    (message,) = slack.messages
    assert message.metadata == card_metadata("run:7")
    await bot.cards.publish("run:7", "#ml-fraud", Message("run 7 done"))
    await bot.notifier.flush()
    assert [m.text for m in slack.messages] == ["run 7 done"]
    assert (await bot.store.get_card("run:7")) is not None


async def test_an_edit_that_failed_many_times_is_still_applied(
    bot: Bot, slack: SlackStandIn
) -> None:
    await bot.cards.publish("deploy:3", "C1", Message("deploy 3 running"))
    await bot.notifier.flush()
    slack.outage("500", "chat.update")
    await bot.cards.publish("deploy:3", "C1", Message("deploy 3 succeeded"))

    async def failed_often() -> bool:
        return len(slack.calls_to("chat.update")) >= 6

    await eventually(failed_often, timeout=20)
    slack.recover()
    await eventually(lambda: _no_pending(bot), timeout=20)
    assert [m.text for m in slack.messages] == ["deploy 3 succeeded"]


async def test_rate_limits_wait_out_retry_after(bot: Bot, slack: SlackStandIn) -> None:
    slack.outage("429", "chat.postMessage", retry_after=1)
    await bot.cards.publish("run:1", "C1", Message("queued"))
    await eventually(lambda: _true(slack.calls_to("chat.postMessage")), timeout=10)
    await asyncio.sleep(0.5)
    assert len(slack.calls_to("chat.postMessage")) == 1  # Retry-After: 1 is honoured
    slack.recover()
    await eventually(lambda: _true(shown(slack, "queued")), timeout=20)


async def test_a_post_whose_answer_was_lost_is_adopted_after_a_restart(
    bot: Bot, slack: SlackStandIn
) -> None:
    slack.outage("hang", "chat.postMessage", seconds=60)
    await bot.cards.publish("deploy:9", "#ml-fraud", Message("deploy 9 awaiting approval"))
    await eventually(lambda: _true(slack.messages), timeout=10)  # posted, answer held back
    bot = await bot.restart()  # the ts never reached the store
    slack.recover()
    await bot.cards.publish("deploy:9", "#ml-fraud", Message("deploy 9 approved"))
    await eventually(lambda: _true(shown(slack, "deploy 9 approved")), timeout=20)
    await bot.notifier.flush()
    assert len(slack.messages) == 1
    assert slack.calls_to("conversations.history")
    assert (await bot.store.get_card("deploy:9")) is not None
    await bot.stop()


async def test_a_thread_reply_is_posted_once_across_a_restart(
    bot: Bot, slack: SlackStandIn
) -> None:
    await bot.cards.publish("deploy:3", "C1", Message("deploy 3 failed"))
    await bot.notifier.flush()
    slack.outage("hang", "chat.postMessage", seconds=60)
    mention = Message("<@U1> deploy #3 failed: timeout")
    await bot.cards.reply("deploy:3", mention, name="failed-mention")
    await eventually(lambda: _true(len(slack.messages) == 2), timeout=10)
    bot = await bot.restart()
    slack.recover()
    await bot.cards.reply("deploy:3", mention, name="failed-mention")  # said again on resume
    await eventually(lambda: _no_pending(bot), timeout=20)
    replies = [m for m in slack.messages if m.thread_ts]
    assert [m.text for m in replies] == [mention.text]
    assert replies[0].metadata == card_metadata("deploy:3:failed-mention")
    assert slack.calls_to("conversations.replies")
    await bot.stop()


async def test_a_repost_starts_a_new_message(bot: Bot, slack: SlackStandIn) -> None:
    await bot.cards.publish("lock:fraud:prod", "C1", Message("locked by bob"))
    await bot.notifier.flush()
    await bot.cards.repost("lock:fraud:prod", "C1", Message("locked by carol"))
    await bot.notifier.flush()
    assert [m.text for m in slack.messages] == ["locked by bob", "locked by carol"]
    assert slack.messages[1].metadata == card_metadata("lock:fraud:prod", 2)


async def _true(value: object) -> bool:
    return bool(value)


async def _no_pending(bot: Bot) -> bool:
    return not await bot.store.cards.pending()


async def test_the_stand_in_pages_history_newest_first_with_metadata_on_request(
    slack: SlackStandIn,
) -> None:
    client = build_web_client(TOKEN, base_url=slack.base_url, timeout=5, metrics=None)
    for n in range(5):
        await client.chat_postMessage(
            channel="C1", text=f"m{n}", metadata=card_metadata(f"run:{n}")
        )
    first = await client.conversations_history(channel="C1", limit=2, include_all_metadata=True)
    assert [m["text"] for m in first["messages"]] == ["m4", "m3"]
    assert first["messages"][0]["metadata"] == card_metadata("run:4")
    assert first["has_more"] is True
    cursor = first["response_metadata"]["next_cursor"]
    rest = await client.conversations_history(channel="C1", limit=10, cursor=cursor)
    assert [m["text"] for m in rest["messages"]] == ["m2", "m1", "m0"]
    assert "metadata" not in rest["messages"][0]
    assert rest["has_more"] is False and rest["response_metadata"]["next_cursor"] == ""
    newest = float(first["messages"][0]["ts"])
    after = await client.conversations_history(channel="C1", oldest=str(newest))
    assert after["messages"] == []
    with pytest.raises(SlackApiError, match="channel_not_found"):  # an ID, not a #name
        await client.conversations_history(channel="#ml-fraud")
    with pytest.raises(SlackApiError, match="invalid_cursor"):
        await client.conversations_history(channel="C1", cursor="%%")
    with pytest.raises(SlackApiError, match="invalid_metadata_schema"):
        await client.chat_postMessage(channel="C1", text="x", metadata={"event_type": "x"})
