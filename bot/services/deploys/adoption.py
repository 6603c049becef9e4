"""The leader's loop that gives every deploy left without a runner a new one: itself.

Every few seconds the leader looks for deploys that no replica's lease covers (see
``ownership``). A running one is resumed at once: its runner died, or stopped and handed it
back. A queued one (or one waiting for approval whose diff is still being computed) has no
lease while the replica that recorded it opens it, so it is reopened only once it has stayed
unowned for the lease (plus the longest diff, while one is computed), or at once on a new
leader's first look. Starting it is a compare-and-set, so a deploy two replicas open still
starts once.
"""

from __future__ import annotations

import asyncio

from bot.domain.deploys import Deployment, DeployState
from bot.services.deploys.diffs import COMPUTING
from bot.services.deploys.runner import DeployRunner
from bot.store.leases import fenced

# how much longer than the lease the leader leaves a deploy whose diff is being computed
# alone: the replica that recorded it may still be computing it (ecspresso diff, 120 s at most)
DIFF_PATIENCE_SECONDS = 150.0
WAITING = DeployState.QUEUED, DeployState.AWAITING_APPROVAL


class Adoption:
    """Runs on the leader: re-attaches the deploys whose runner is gone."""

    def __init__(self, runner: DeployRunner, every: float) -> None:
        self.runner = runner
        self.every = every
        self.sightings: dict[int, float] = {}  # queued deploys seen unowned: since when

    async def run(self) -> None:
        """The loop: a look at once (what a new leader finds), then every ``every`` s."""
        await self.adopt(first=True)
        while True:
            await asyncio.sleep(self.every)
            await self.adopt()

    async def adopt(self, *, first: bool = False) -> None:
        """Resume each running deploy that no replica's lease covers; reopen each queued one,
        or one whose diff is being computed, once it has stayed so for its patience."""
        found = await self.runner.store.deployments.unowned(DeployState.RUNNING, *WAITING)
        found = [
            d for d in found if d.state != DeployState.AWAITING_APPROVAL or d.diff == COMPUTING
        ]
        self.sightings = {d.id: self.sightings[d.id] for d in found if d.id in self.sightings}
        own = self.runner.own
        for d in found:
            if own is not None and d.id in own.held:
                continue  # running here: its lease is being renewed
            if d.state == DeployState.RUNNING:
                await self.runner.resume(d)
            elif self.waited(d, first=first):
                with fenced(None):  # the deploy's compare-and-sets decide, not the leadership
                    task = asyncio.create_task(self.reopen(d), name=f"reopen-{d.id}")
                self.runner.track(task)

    def waited(self, d: Deployment, *, first: bool) -> bool:
        """Whether the queued ``d`` has stayed unowned long enough to be this replica's. What
        a new leader finds on its first look is reopened at once: leadership moves when a
        replica died or stopped, and a deploy must not wait out the diff's patience behind
        it. Reopening one a live replica is still opening costs at most a second diff (read
        only); its card is an outbox entry and its start a compare-and-set."""
        own = self.runner.own
        at = asyncio.get_running_loop().time()
        lease = own.lease.seconds if own is not None else 0.0
        patience = lease + (DIFF_PATIENCE_SECONDS if d.diff == COMPUTING else 0.0)
        since = self.sightings.setdefault(d.id, at)
        if not first and at - since < patience:
            return False
        self.sightings[d.id] = at  # reopened now; again only after another wait
        return True

    async def reopen(self, seen: Deployment) -> None:
        """Open the deploy again as it is now, if nothing has moved it since it was seen."""
        d = await self.runner.store.deployments.get(seen.id)
        if d is None or (d.state, d.attempt, d.diff) != (seen.state, seen.attempt, seen.diff):
            return
        if self.runner.reopen is not None:
            await self.runner.reopen(d)
        elif d.state == DeployState.QUEUED:
            self.runner.start(d)
