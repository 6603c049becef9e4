"""A bot started and stopped inside a longer-lived process (a test session, the sandbox's
scripts) leaves nothing behind: only `mlops-bot serve`, whose bot lives as long as its
process, keeps its start-up objects out of the collector (`gc.freeze`)."""

from __future__ import annotations

import gc
import weakref

from bot.sandbox.runner import running_sandbox


async def test_a_stopped_bot_is_collected_and_nothing_was_frozen() -> None:
    frozen = gc.get_freeze_count()
    async with running_sandbox() as sandbox:
        bot = weakref.ref(sandbox.bot)
        del sandbox
    gc.collect()
    # a freeze in start would hold this bot (and the garbage of every bot before it) for good
    assert gc.get_freeze_count() == frozen
    assert bot() is None
