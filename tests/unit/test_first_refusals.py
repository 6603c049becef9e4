"""The first refusals a replica holds: the oldest ids first, lapsed ones gone, in any order of
arrival."""

from __future__ import annotations

import time

from bot.store.refusals import FirstRefusals


def later(seconds: float = 60.0) -> float:
    return time.monotonic() + seconds


def test_the_lowest_ids_come_first_whatever_order_they_were_taken_in() -> None:
    held = FirstRefusals()
    held.take([7, 8], later())
    held.take([3, 9, 5], later())  # a transaction that committed after one with higher ids
    assert held.oldest(3) == [3, 5, 7]
    assert held.oldest(10, skip={5, 8}) == [3, 7, 9]
    assert len(held) == 5


def test_lapsed_refusals_are_gone_and_the_rest_stay() -> None:
    held = FirstRefusals()
    held.take([1, 2], time.monotonic() - 1)  # ran out already
    held.take([3], later())
    assert held.oldest(5) == [3]
    assert len(held) == 1


def test_a_claimed_row_is_dropped_and_a_retaken_one_lapses_last() -> None:
    held = FirstRefusals()
    held.take([1, 2, 3], time.monotonic() - 1)
    held.take([2], later())  # taken again: its new end counts, not its place
    held.drop(3)
    held.drop(42)  # never held: nothing happens
    assert held.oldest(5) == [2]
    assert len(held) == 1
