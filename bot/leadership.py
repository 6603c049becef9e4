"""One leader among the replicas: it holds the store's leader lease and runs the singleton loops.

Every replica runs an elector. The one that acquires the lease starts the loops (and runs what
must happen once per leadership, such as resuming deploys), all under a fence carrying its
term, and renews the lease every few seconds. It stops the loops as soon as it loses the lease
(a renewal refused or failing past its expiry, or a loop's write refused as ``Deposed``); the
others keep trying and take over once the lease has expired, with the next term.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from bot.services.training.followers import Supervisor
from bot.store.db import now
from bot.store.leases import LEADER, Deposed, Lease, Leases, fenced

log = structlog.get_logger(__name__)
Loop = Callable[[], Awaitable[None]]


def replica_id() -> str:
    """This process among the replicas: host, pid and a random part (pids repeat in pods)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Timing:
    lease: float  # seconds a lease lasts unrenewed
    renew: float  # seconds between renewals (and between a follower's attempts)


class LeaderElector:
    """Acquires and renews the lease; runs ``loops`` (and ``on_lead``) only while it holds it."""

    def __init__(
        self,
        leases: Leases,
        loops: Sequence[tuple[str, Loop]],
        timing: Timing,
        *,
        holder: str | None = None,
        on_lead: Loop | None = None,
        takeover: bool = False,
        name: str = LEADER,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.leases = leases
        self.loops = list(loops)
        self.timing = timing
        self.holder = holder or replica_id()
        self.on_lead = on_lead
        self.takeover = takeover  # the first attempt takes the lease even while it is live
        self.name = name
        self.lease: Lease | None = None
        self.terms: list[int] = []  # every term this elector led, in order (for tests, logs)
        self.supervisor = supervisor or Supervisor()  # runs the loops while this one leads
        self._deposed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._wait = timing.renew

    @property
    def leading(self) -> bool:
        return self.lease is not None

    async def start(self) -> None:
        """One attempt now (so that a lone replica leads before this returns), then renew
        or retry in the background."""
        try:
            await self._round()
        except Exception:
            log.exception("leader_round_failed", holder=self.holder)
        self.takeover = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="leader-elector")

    async def stop_trying(self) -> None:
        """No more renewals or attempts (a stopping replica); the loops and the lease stay."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def stop(self) -> None:
        """Stop the loops and give the lease up, so that another replica takes over at once."""
        await self.stop_trying()
        lease = self.lease
        await self._step_down("stopping")
        if lease is not None:
            with contextlib.suppress(Exception):
                await self.leases.release(lease)

    async def _run(self) -> None:
        while True:
            try:
                await self._round()
            except Exception:
                log.exception("leader_round_failed", holder=self.holder)
                await self._expire_if_lapsed()
            await self._pause()

    async def _round(self) -> None:
        if self._deposed.is_set():
            self._deposed.clear()
            await self._step_down("a loop's write was refused: another replica leads")
        if self.lease is None:
            await self._try_lead()
            return
        renewed = await self.leases.renew(self.lease, self.timing.lease)
        if renewed is None:
            await self._step_down("the lease was taken over")
        else:
            self.lease = renewed

    async def _try_lead(self) -> None:
        if not self.takeover and not await self._lapsed_elsewhere():
            return
        lease = await self.leases.acquire(
            self.name, self.holder, self.timing.lease, force=self.takeover
        )
        if lease is not None:
            await self._lead(lease)

    async def _lapsed_elsewhere(self) -> bool:
        """Whether the lease may be free (a read, so that followers do not write to poll)."""
        current = await self.leases.current(self.name)
        if current is None or current.holder == self.holder:
            return True
        left = (current.expires_at - now()).total_seconds()
        # look again just after it would lapse, if that comes before the next round
        self._wait = min(self.timing.renew, max(0.05, left + 0.05))
        return left <= 0

    async def _lead(self, lease: Lease) -> None:
        self.lease = lease
        self.terms.append(lease.term)
        log.info("leader_elected", holder=self.holder, term=lease.term)
        with fenced(lease):  # the loops' tasks inherit the fence
            for name, loop in self.loops:
                self.supervisor.start(name, self._guard(loop))
            if self.on_lead is not None:
                await self.on_lead()

    def _guard(self, loop: Loop) -> Loop:
        async def guarded() -> None:
            try:
                await loop()
            except Deposed:
                self._deposed.set()
                await asyncio.Event().wait()  # until the elector stops this loop

        return guarded

    async def _step_down(self, reason: str) -> None:
        await self.supervisor.stop()
        if self.lease is not None:
            level = log.info if reason == "stopping" else log.warning
            level("leader_stepped_down", holder=self.holder, term=self.lease.term, why=reason)
        self.lease = None

    async def _expire_if_lapsed(self) -> None:
        """The store did not answer: past the lease's end, another replica may lead already."""
        if self.lease is not None and now() >= self.lease.expires_at:
            await self._step_down("the lease lapsed while the store did not answer")

    async def _pause(self) -> None:
        wait, self._wait = self._wait, self.timing.renew
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._deposed.wait()
