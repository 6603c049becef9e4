"""Each running deploy has one runner among the replicas: the one whose lease on it is live.

The replica that takes a deploy (starts it, or resumes it) gets a lease on it in the store
(``deployments.runner``/``runner_until``, set by the same compare-and-set that takes it) and
renews it every few seconds while the deploy's task runs. If the replica dies, the lease lapses
and the leader re-attaches the deploy (``adoption.Adoption``); while it is live, nobody does.
A replica that finds a deploy it works on taken by another (it stalled past its lease) cancels
that task, which ends its ecspresso. A stopping replica hands its leases back, so that the
leader takes those deploys at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import structlog

from bot.domain.deploys import Deployment
from bot.store.deployments import Deployments, RunnerLease

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Held:
    attempt: int  # the attempt this replica took the deploy with
    task: asyncio.Task[Any]  # the task running it here


class Ownership:
    """This replica's leases on the deploys it runs: held, renewed, given up."""

    def __init__(
        self, deployments: Deployments, lease: RunnerLease, every: float, *, lone: bool = False
    ) -> None:
        self.deployments = deployments
        self.lease = lease
        self.every = every
        self.lone = lone  # the only replica (SQLite): no other can be running a deploy
        self.held: dict[int, Held] = {}
        self._renewer: asyncio.Task[None] | None = None

    def hold(self, d: Deployment, task: asyncio.Task[Any]) -> None:
        """``task`` runs ``d``, taken with the lease: renew it until the task ends."""
        self.held[d.id] = held = Held(d.attempt, task)
        task.add_done_callback(lambda _: self._forget(d.id, held))

    def _forget(self, deploy_id: int, held: Held) -> None:
        if self.held.get(deploy_id) is held:
            del self.held[deploy_id]

    def start(self) -> None:
        if self._renewer is None:
            loop = asyncio.get_running_loop()
            self._renewer = loop.create_task(self._run(), name="deploy-leases")

    async def stop(self) -> None:
        """No more renewals; the leases this replica still has are handed back."""
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None
        with contextlib.suppress(Exception):
            handed = await self.deployments.hand_back(self.lease.runner)
            if handed:
                log.info("deploys_handed_back", count=handed, runner=self.lease.runner)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.renew()
            except Exception:
                log.exception("deploy_leases_not_renewed", held=sorted(self.held))

    async def renew(self) -> None:
        """Extend the leases of the deploys running here; let go of those taken elsewhere."""
        held = dict(self.held)
        kept = await self.deployments.renew_runs(self.lease, held)
        for deploy_id in held.keys() - kept:
            await self._let_go(deploy_id, held[deploy_id])

    async def _let_go(self, deploy_id: int, held: Held) -> None:
        fresh = await self.deployments.get(deploy_id)
        if fresh is None or fresh.state.finished or fresh.attempt == held.attempt:
            return  # it ended here (or is ending): nothing to stop
        log.warning("deploy_taken_over", deploy=deploy_id, attempt=fresh.attempt)
        held.task.cancel()  # ends its ecspresso; the attempt fence refuses its writes anyway
