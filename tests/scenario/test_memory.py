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


async def test_the_next_sandbox_lets_go_of_the_aws_state_of_the_one_before() -> None:
    """moto's state is per process; its reset must free it (an EC2 backend alone holds
    1,301 default AMIs with their snapshots and volumes), not keep it in moto's caches."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2 import ec2_backends

    async with running_sandbox() as sandbox:
        region = sandbox.stand_ins.aws.region
        backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
        assert backend.amis  # the backend the sandbox's fixtures used, with moto's AMIs
        first = weakref.ref(backend)
        del sandbox, backend
    async with running_sandbox():
        gc.collect()
        assert first() is None
