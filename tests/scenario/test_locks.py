"""Locks and the freeze end to end: commands, the Unlock button, cards, policy and audit."""

from __future__ import annotations

from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox


def replies_to(sandbox: Sandbox, user: str) -> list[str]:
    return [m.text for m in sandbox.slack.messages if m.ephemeral_to == user]


def cards_in(sandbox: Sandbox, channel: str) -> list[str]:
    return [
        m.text for m in sandbox.slack.messages if m.channel == channel and m.ephemeral_to is None
    ]


async def test_lock_conflict_button_and_unlock(console: Console, sandbox: Sandbox) -> None:
    await console.execute('/deploy fraud lock prod reason="db migration"')
    await console.execute('/deploy fraud lock prod reason="again"')
    assert "already locked by <@U0ALICE>" in replies_to(sandbox, "U0ALICE")[-1]
    lock = await sandbox.bot.store.get_lock("fraud", "prod")
    assert lock is not None and lock.reason == "db migration"

    await console.execute("as @bob")
    await console.execute("click Unlock")
    assert "needs the deployer role on fraud/prod" in replies_to(sandbox, "U0BOB")[-1]
    assert await sandbox.bot.store.get_lock("fraud", "prod") is not None

    await console.execute("as @alice")
    await console.execute("click Unlock")
    await sandbox.bot.notifier.flush()
    assert await sandbox.bot.store.get_lock("fraud", "prod") is None
    assert cards_in(sandbox, "C0FRAUD") == ["fraud/prod unlocked by <@U0ALICE>"]
    (card,) = [m for m in sandbox.slack.messages if m.channel == "C0FRAUD" and not m.ephemeral_to]
    assert (
        card.edited >= 1
    )  # the lock card, edited in place (posted by the outbox, after the reply)


async def test_only_holder_or_admin_unlocks(console: Console, sandbox: Sandbox) -> None:
    await console.execute('/deploy churn lock stg reason="experiment"')
    await console.execute("as @eve")
    await console.execute("/deploy churn unlock stg")
    assert "Unlocked *churn/stg*" in replies_to(sandbox, "U0EVE")[-1]
    await console.execute("/deploy churn unlock stg")
    assert "not locked" in replies_to(sandbox, "U0EVE")[-1]


async def test_freeze_is_admin_only_and_announced_everywhere(
    console: Console, sandbox: Sandbox
) -> None:
    await console.execute('/deploy freeze reason="quarter end"')
    assert "needs the admin role" in replies_to(sandbox, "U0ALICE")[-1]
    await console.execute("as @eve")
    await console.execute('/deploy freeze reason="quarter end"')
    await console.execute('/deploy freeze reason="twice"')
    assert "already frozen by <@U0EVE>" in replies_to(sandbox, "U0EVE")[-1]
    assert any("frozen" in text for text in cards_in(sandbox, "C0FRAUD"))
    assert any("frozen" in text for text in cards_in(sandbox, "C0CHURN"))

    await console.execute("as @dave")
    await console.execute("/deploy fraud status")
    assert "deploys frozen by <@U0EVE>: quarter end" in str(sandbox.slack.messages[-1].blocks)

    await console.execute("as @eve")
    await console.execute("/deploy unfreeze")
    assert await sandbox.bot.store.get_freeze() is None


async def test_every_interaction_is_audited(console: Console, sandbox: Sandbox) -> None:
    await console.execute('/deploy fraud lock stg reason="audit me"')
    await console.execute("as @dave")
    await console.execute("/deploy fraud unlock stg")
    await console.execute("/deploy nope stg")
    events = await sandbox.bot.store.audit_events()
    summary = [(e.actor, e.action, e.target, str(e.outcome)) for e in events]
    assert summary == [
        ("U0ALICE", "deploy.lockenv", "fraud/stg", "ok"),
        ("U0DAVE", "deploy.unlockenv", "fraud/stg", "denied"),
        ("U0DAVE", "/deploy", "", "rejected"),
    ]
    assert events[0].parameters["intent"]["reason"] == "audit me"
    assert all(e.correlation_id for e in events)
