"""A store call's time bound: what ends it early is said as a ``StoreTimeout``."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bot.store.db import Bounded
from bot.store.errors import StoreTimeout


async def test_a_bounded_block_that_runs_out_of_time_is_a_store_timeout() -> None:
    with pytest.raises(StoreTimeout, match=r"did not answer within 0\.05 s"):
        async with Bounded(0.05):
            await asyncio.sleep(1)


async def test_a_lock_held_past_sqlites_own_wait_is_a_store_timeout() -> None:
    with pytest.raises(StoreTimeout, match="stayed locked for 5 s"):
        async with Bounded(5):
            raise sqlite3.OperationalError("database is locked")


async def test_other_errors_leave_a_bounded_block_as_they_are() -> None:
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        async with Bounded(5):
            raise sqlite3.OperationalError("disk I/O error")
    with pytest.raises(StoreTimeout, match="inner"):
        async with Bounded(5):
            raise StoreTimeout("inner")
    async with Bounded(5):
        await asyncio.sleep(0)  # and a block that ends in time ends quietly
