"""The write gate: one SQLite writer of the process at a time, the acks' inserts first."""

from __future__ import annotations

import asyncio

import pytest

from bot.store.write_gate import WriteGate


async def _writer(gate: WriteGate, name: str, order: list[str], *, urgent: bool = False) -> None:
    await gate.acquire(urgent=urgent)
    try:
        order.append(name)
        await asyncio.sleep(0)
    finally:
        gate.release()


async def test_waiting_urgent_writers_go_before_waiting_normal_ones() -> None:
    gate = WriteGate(enabled=True)
    order: list[str] = []
    await gate.acquire()
    waiters = [
        asyncio.create_task(_writer(gate, "normal 1", order)),
        asyncio.create_task(_writer(gate, "normal 2", order)),
        asyncio.create_task(_writer(gate, "urgent", order, urgent=True)),
    ]
    await asyncio.sleep(0.01)
    assert order == []  # all wait for the first holder
    gate.release()
    await asyncio.gather(*waiters)
    assert order == ["urgent", "normal 1", "normal 2"]


async def _urgent_and_normal_waiting(
    gate: WriteGate, order: list[str]
) -> tuple[asyncio.Task[None], asyncio.Task[None]]:
    """The gate held by the caller; an urgent writer (to be cancelled) and a normal one wait."""
    await gate.acquire()
    urgent = asyncio.create_task(_writer(gate, "cancelled", order, urgent=True))
    normal = asyncio.create_task(_writer(gate, "patient", order))
    await asyncio.sleep(0.01)
    return urgent, normal


async def test_a_writer_cancelled_while_waiting_leaves_the_turn_to_the_next() -> None:
    gate = WriteGate(enabled=True)
    order: list[str] = []
    gave_up, patient = await _urgent_and_normal_waiting(gate, order)
    gave_up.cancel()
    gate.release()
    async with asyncio.timeout(1):
        await patient
    with pytest.raises(asyncio.CancelledError):
        await gave_up
    assert order == ["patient"]
    async with asyncio.timeout(1):  # free again: nothing holds a turn it will not give back
        await _writer(gate, "after", order)


async def test_a_turn_handed_over_just_as_its_writer_gives_up_is_passed_on() -> None:
    gate = WriteGate(enabled=True)
    order: list[str] = []
    gave_up, patient = await _urgent_and_normal_waiting(gate, order)
    gate.release()  # the urgent waiter's turn, before it has run
    gave_up.cancel()
    async with asyncio.timeout(1):
        await patient
    assert order == ["patient"]


async def test_a_disabled_gate_lets_every_writer_through_at_once() -> None:
    gate = WriteGate(enabled=False)
    await gate.acquire()
    async with asyncio.timeout(1):
        await gate.acquire(urgent=True)
        async with gate.hold():
            pass
    gate.release()
    gate.release()
