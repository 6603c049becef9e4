"""Runs an approved deploy: lock, ecspresso, verification against ECS, automatic rollback.

Every step is recorded on the deployment row (``Step``) with what ECS ran before and the
process group of a running ecspresso, so a restarted bot ends that group and resumes the deploy
from what ECS says; the final state and the lock release are one transaction.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from bot.clock import Clock, utcnow
from bot.config.models import EnvironmentConfig
from bot.config.settings import Settings
from bot.crash import crash_point
from bot.domain.deploys import Deployment, DeployState, Lock
from bot.errors import BotError
from bot.ports import (
    Deployer,
    EcspressoResult,
    ProcessGroup,
    RunningContainer,
    Services,
    ServiceState,
)
from bot.services.deploys.cards import DeployCards
from bot.services.deploys.configs import DeployConfigs, image_variables
from bot.services.deploys.ownership import Ownership
from bot.store import Store
from bot.store.deployments import RunnerLease
from bot.store.leases import fenced
from bot.views.blocks import Message, escape, user
from bot.views.deploys import output_message

log = structlog.get_logger(__name__)
SETTLE_POLL_SECONDS = 1.0
MAX_ECSPRESSO_RUNS = 2  # a deploy's ecspresso, and one re-run after an interruption


class Step(StrEnum):
    """Where a running deploy is (``deployments.step``): what a restart resumes from."""

    STARTING = "starting"  # the lock, the gates: ecspresso not started
    ECSPRESSO = "ecspresso"  # its ecspresso deploy started (it may have changed ECS)
    VERIFYING = "verifying"  # ecspresso succeeded; ECS is being checked
    ROLLING_BACK = "rolling back"  # it failed (reason in ``detail``); ecspresso rolls back


def holder_of(d: Deployment) -> str:
    """Who holds the environment's lock for a deploy."""
    return f"deploy #{d.id}"


def ecs_snapshot(state: ServiceState, family_head: int | None = None) -> str:
    """What ``changed_since`` compares, as recorded before the deploy (``ecs_before``), and
    the newest revision of the service's family then (``family_head``)."""
    return json.dumps(
        {
            "task_definition": state.task_definition,
            "revision": state.revision,
            "desired": state.desired,
            "deployment_ids": list(state.deployment_ids),
            "family_head": family_head,
        }
    )


def head_from_snapshot(text: str | None) -> int | None:
    head = json.loads(text).get("family_head") if text else None
    return int(head) if head is not None else None


def ecs_from_snapshot(text: str | None) -> ServiceState | None:
    if not text:
        return None
    data: dict[str, Any] = json.loads(text)
    ids = tuple(str(x) for x in data["deployment_ids"])
    return ServiceState(
        cluster="",
        service="",
        task_definition=str(data["task_definition"]),
        revision=int(data["revision"]),
        images=(),
        rollout_state="",
        running=0,
        desired=int(data["desired"]),
        deployments=len(ids),
        deployment_ids=ids,
    )


REGISTRY_HOST = re.compile(r"^[^/]*[.:][^/]*/|^localhost/")


def in_repository(image: str, repository: str) -> bool:
    """Whether an image reference (``registry/name[:tag][@digest]``) is from ``repository``
    (a repository name such as ``fraud``, or the full ``registry/name``)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rindex(":")]
    path = REGISTRY_HOST.sub("", name, count=1)
    return repository in (name, path)


def last_error(output: str) -> str:
    """``: <ecspresso's last error line>``, or "" (views escape it for mrkdwn)."""
    lines = [ln.strip() for ln in output.splitlines() if "[ERROR]" in ln or "panic:" in ln]
    if not lines:
        return ""
    return f": {lines[-1][:200]}"


class Failed(Exception):
    """The deploy did not reach its target; ``touched``: ECS may have changed and no one has
    compared it with what ran before yet (``fail`` then decides on a rollback)."""

    def __init__(self, reason: str, *, touched: bool = True) -> None:
        super().__init__(reason)
        self.touched = touched


@dataclass
class Output:
    """ecspresso's lines, shown in one thread reply that is edited as they come (coalesced)."""

    cards: DeployCards
    deployment: Deployment
    where: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        self.lines: list[str] = []

    async def open(self) -> None:
        self.where = await self.cards.thread(self.deployment, output_message([]))

    def add(self, line: str) -> None:
        self.lines.append(line.rstrip())
        if self.where is not None:
            self.cards.edit(self.where, output_message(self.lines))


class DeployRunner:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        cards: DeployCards,
        deployer: Deployer | None,
        services: Services | None,
        configs: DeployConfigs,
        *,
        aws_env: Mapping[str, str],
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.cards = cards
        self.deployer = deployer
        self.services = services
        self.configs = configs
        self.aws_env = dict(aws_env)
        self.clock = clock
        self.tasks: set[asyncio.Task[Any]] = set()
        # how a deploy recorded but not yet started resumes (its card, diff and start: set by
        # the Deploys service); without it, a queued deploy found at start just starts
        self.reopen: Callable[[Deployment], Coroutine[Any, Any, object]] | None = None
        self.stopping = False  # set by drain: nothing starts, nothing is recorded as failed
        # this replica's leases on the deploys it runs (None: no leases, a lone bot in tests)
        self.own: Ownership | None = None

    @property
    def lease(self) -> RunnerLease | None:
        return self.own.lease if self.own is not None else None

    def hold(self, d: Deployment, task: asyncio.Task[Any] | None) -> None:
        if self.own is not None and task is not None:
            self.own.hold(d, task)

    def env(self, d: Deployment) -> EnvironmentConfig:
        return self.settings.models[d.model].environments[d.env]

    def start(self, d: Deployment) -> None:
        """Run the deploy in the background (the caller has already answered the user); not
        while stopping: the deploy stays queued for the next start."""
        if not self.stopping:
            self.track(asyncio.create_task(self.execute(d), name=f"deploy-{d.id}"))

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` for running deploys, then cancel the rest and await them: a
        cancelled deploy ends its ecspresso group and stays running (lock held) for the next
        start to resume. From here on, nothing starts."""
        self.stopping = True
        if self.tasks:
            _, late = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
        if self.own is not None:
            await self.own.stop()  # the next leader takes what is left at once

    async def execute(self, queued: Deployment) -> None:
        d = await self.store.deployments.take(
            queued.id,
            only_if=[DeployState.QUEUED],
            attempt=queued.attempt,
            lease=self.lease,
            state=DeployState.RUNNING,
            started_at=self.clock(),
            step=str(Step.STARTING),
            detail="ecspresso deploy running; output in the thread",
        )
        if d is None:
            return
        self.hold(d, asyncio.current_task())
        await self.cards.show(d)
        await self.guarded(d, self.first_run)

    async def guarded(self, d: Deployment, body: Callable[[Deployment], Awaitable[None]]) -> None:
        """``body``, with any failure turned into the deploy's final state. Cancellation is
        not one, nor is anything that happens once the bot is stopping (ecspresso ended by the
        stop exits -15): the deploy stays running for the next start to resume."""
        try:
            await body(d)
        except Failed as failure:
            await self.fail(d, failure)
        except BotError as exc:
            await self.fail(d, Failed(str(exc), touched=False))
        except Exception as exc:
            log.exception("deploy_crashed", deploy=d.id)
            await self.fail(d, Failed(f"the bot failed: {type(exc).__name__}", touched=True))

    def interrupted(self) -> bool:
        """True once this bot is stopping or this task was asked to stop."""
        task = asyncio.current_task()
        return self.stopping or (task is not None and task.cancelling() > 0)

    async def first_run(self, d: Deployment, *, registered: int | None = None) -> None:
        await self.take_lock(d, holder_of(d))
        await self.run(d, registered=registered)

    async def take_lock(self, d: Deployment, holder: str) -> None:
        expires = self.clock() + timedelta(minutes=self.env(d).lock_minutes)
        lock = Lock(d.model, d.env, holder, f"{d.kind} in progress", self.clock(), expires)
        taken, current = await self.store.acquire_lock(lock)
        if not taken and current.holder != holder and not d.force_reason:
            raise Failed(
                f"{d.model}/{d.env} is locked by {user(current.holder)}: {current.reason}",
                touched=False,
            )
        frozen = await self.store.get_freeze()
        if frozen is not None and not d.force_reason:
            raise Failed(
                f"deploys are frozen by {user(frozen.holder)}: {frozen.reason}", touched=False
            )

    def ecspresso_env(self, d: Deployment) -> dict[str, str]:
        """What ecspresso's templates read: the environment's variables, then the image, and
        the cluster and service the bot verifies (``ECS_CLUSTER``/``ECS_SERVICE``: a config
        that reads them deploys exactly what is checked afterwards; they win over variables)."""
        env = self.env(d)
        repository = self.settings.models[d.model].deploy.image_repository or ""
        values = {**self.aws_env, **dict(env.variables)}
        values |= image_variables(d.image_tag, d.digest, repository)
        values["MLOPS_DEPLOY_ID"] = str(d.id)
        if env.cluster:
            values["ECS_CLUSTER"] = env.cluster
        if env.service:
            values["ECS_SERVICE"] = env.service
        return values

    async def run(self, d: Deployment, *, registered: int | None = None) -> None:
        """ecspresso, then ECS checked; on a failure, a rollback only if ECS changed.
        ``registered``: the revision an interrupted ecspresso of this deploy registered, which
        is deployed as it is (nothing registered twice)."""
        if self.deployer is None:
            raise Failed("ecspresso is not configured", touched=False)
        before = await self.current(d)
        if before is not None:
            await self.store.deployments.update(
                d.id,
                attempt=d.attempt,
                previous_revision=before.revision,
                ecs_before=ecs_snapshot(before, await self.family_head(d, before)),
            )
        async with self.configs.checkout(d.model, d.env) as config:
            output = Output(self.cards, d)
            await output.open()
            # a rollback deploys a registered revision and keeps the service definition as is
            back = d.kind == "rollback"
            result = await self.ecspresso(
                d,
                Step.ECSPRESSO,
                config,
                output.add,
                revision=d.revision if back else registered,
                keep_service=back,
            )
            if not result.ok:
                reason = self.ecspresso_failure(result)
                raise Failed(await self.after_failure(d, config, before, reason), touched=False)
            await self.store.deployments.enter(d.id, str(Step.VERIFYING), attempt=d.attempt)
            state, problem = await self.checked(d)
            if state is None:
                raise Failed(await self.after_failure(d, config, before, problem), touched=False)
            await self.succeed(d, state)

    async def ecspresso(
        self,
        d: Deployment,
        step: Step,
        config: Path,
        on_line: Callable[[str], None],
        *,
        revision: int | None = None,
        keep_service: bool = False,
        detail: str | None = None,
    ) -> EcspressoResult:
        """One ecspresso deploy, recorded: the step first (an ecspresso deploy counted), then
        its process group while it runs, cleared once the group has ended."""
        assert self.deployer is not None
        extra = {} if detail is None else {"detail": detail[:900]}
        entered = await self.store.deployments.enter(
            d.id, str(step), attempt=d.attempt, ecspresso_run=step == Step.ECSPRESSO, **extra
        )
        if entered is None:
            raise Failed("the deploy is no longer running", touched=False)

        async def started(group: ProcessGroup) -> None:
            await self.store.deployments.record_process(d.id, group.pgid, group.fingerprint)

        try:
            return await self.deployer.deploy(
                str(config),
                self.ecspresso_env(d),
                on_line,
                revision=revision,
                keep_service=keep_service,
                on_start=started,
            )
        finally:  # deploy() returns or raises only once the group has ended
            await self.store.deployments.clear_process(d.id, attempt=d.attempt)

    async def checked(self, d: Deployment) -> tuple[ServiceState | None, str]:
        """``verify`` as a value: the verified state, or None and why not."""
        try:
            return await self.verify(d), ""
        except Failed as failure:
            return None, str(failure)
        except BotError as exc:
            return None, f"could not verify on ECS: {exc}"

    def ecspresso_failure(self, result: EcspressoResult) -> str:
        if result.timed_out:
            return f"ecspresso timed out after {self.settings.ecspresso.timeout_seconds:g}s"
        if result.config_error:
            return (
                "a template/config error (e.g. an unset must_env) before any AWS call "
                f"(ecspresso exited with 2{last_error(result.output)})"
            )
        return f"ecspresso failed (exited with {result.exit_code}{last_error(result.output)})"

    async def after_failure(
        self, d: Deployment, config: Path, before: ServiceState | None, reason: str
    ) -> str:
        """The reason with what happened to ECS: unchanged (no rollback), or changed and
        rolled back (only the task definition) and verified, or why not."""
        if before is None:
            return f"{reason}; what ECS ran before is unknown, so nothing was rolled back"
        try:
            after = await self.current(d)
        except BotError as exc:
            return f"{reason}; ECS could not be read ({exc}), so nothing was rolled back"
        if after is None or not after.changed_since(before):
            return f"{reason}; ECS unchanged (revision {before.revision}), nothing rolled back"
        digests = {c.digest for c in self.mine(d, before.containers) if c.digest}
        target = (before.revision, digests.pop() if len(digests) == 1 else "")
        return f"{reason}; {await self.roll_back(d, config, target, reason)}"

    async def roll_back(
        self, d: Deployment, config: Path, target: tuple[int, str], reason: str
    ) -> str:
        """Deploys ``target`` (revision, digest it ran or "") with ``--revision N
        --no-update-service`` and verifies it like any deploy; says how it went. ``reason``
        (why the deploy failed) is kept in ``detail`` while the rollback runs."""
        revision, digest = target
        if self.deployer is None:
            return f"rollback to revision {revision} failed: ecspresso is not configured"
        log.warning("deploy_rolling_back", deploy=d.id, revision=revision)
        result = await self.ecspresso(
            d,
            Step.ROLLING_BACK,
            config,
            lambda _: None,
            revision=revision,
            keep_service=True,
            detail=reason,
        )
        if not result.ok:
            return f"rollback to revision {revision} failed: {self.ecspresso_failure(result)}"
        try:
            await self.verify(d, revision=revision, digest=digest)
        except Failed as failure:
            return f"rollback to revision {revision} failed: {failure}"
        except BotError as exc:
            return f"rollback to revision {revision} failed: could not verify on ECS: {exc}"
        return f"rolled back and verified on revision {revision}"

    async def family_head(self, d: Deployment, state: ServiceState) -> int | None:
        """The newest revision of the service's family before ecspresso runs (None if ECS
        does not say): a revision above it after an interruption was registered meanwhile."""
        assert self.services is not None
        try:
            return (await self.services.newest_registration(state.task_definition)).revision
        except BotError as exc:
            log.warning("deploy_family_head_unknown", deploy=d.id, error=str(exc))
            return None

    async def registered_meanwhile(self, d: Deployment, before: ServiceState) -> int | None:
        """The revision an interrupted ecspresso of this deploy registered before it could
        update the service: newer than the family's head before it ran, running the deploy's
        digest in the model's containers. A re-run deploys it instead of registering another."""
        head = head_from_snapshot(d.ecs_before)
        if head is None or d.kind == "rollback" or not d.digest or self.services is None:
            return None
        repository = self.settings.models[d.model].deploy.image_repository
        try:
            newest = await self.services.newest_registration(before.task_definition)
            if newest.revision <= head:
                return None
            ours = [i for i in newest.images if not repository or in_repository(i, repository)]
            digests = await self.services.image_digests(tuple(ours))
        except BotError as exc:
            log.warning("deploy_registered_meanwhile_unknown", deploy=d.id, error=str(exc))
            return None
        if not digests or any(x != d.digest for x in digests):
            return None
        log.warning("deploy_reusing_registered_revision", deploy=d.id, revision=newest.revision)
        return newest.revision

    async def current(self, d: Deployment) -> ServiceState | None:
        env = self.env(d)
        if self.services is None or not env.cluster or not env.service:
            return None
        return await self.services.state(env.cluster, env.service)

    async def settled(self, d: Deployment) -> ServiceState:
        """Follow ECS until the primary deployment's rollout ends and its tasks run (or the
        wait runs out)."""
        deadline = asyncio.get_running_loop().time() + self.settings.ecspresso.verify_seconds
        while True:
            state = await self.current(d)
            if state is None:
                raise Failed("no ECS cluster/service configured to verify against")
            if state.rollout_state == "FAILED" or (
                state.rollout_state != "IN_PROGRESS"
                and state.deployments <= 1
                and state.tasks >= state.desired
            ):
                return state
            if asyncio.get_running_loop().time() > deadline:
                raise Failed(
                    f"the rollout did not settle (rollout {state.rollout_state}, "
                    f"{state.tasks} of {state.desired} tasks of revision {state.revision} "
                    "running)"
                )
            await asyncio.sleep(SETTLE_POLL_SECONDS)

    def mine(
        self, d: Deployment, containers: tuple[RunningContainer, ...]
    ) -> list[RunningContainer]:
        """The containers that run the model's image: those from its repository (sidecars
        from other repositories are not the deploy's business)."""
        repository = self.settings.models[d.model].deploy.image_repository
        if not repository:
            return list(containers)
        return [c for c in containers if in_repository(c.image, repository)]

    async def verify(
        self, d: Deployment, *, revision: int | None = None, digest: str | None = None
    ) -> ServiceState:
        """ECS itself must run the digest: the primary deployment's tasks, their containers
        from the model's repository, with a completed rollout (and the revision a rollback
        asked for)."""
        if revision is None and d.kind == "rollback":
            revision = d.revision
        wanted = d.digest if digest is None else digest
        state = await self.settled(d)
        if state.rollout_state != "COMPLETED":
            raise Failed(f"the rollout ended {state.rollout_state} (revision {state.revision})")
        if revision is not None and state.revision != revision:
            raise Failed(f"ECS runs revision {state.revision}, not {revision}")
        if not wanted:
            return state
        ours = self.mine(d, state.containers)
        if not ours:
            repository = self.settings.models[d.model].deploy.image_repository or "the model"
            raise Failed(
                f"no running task of revision {state.revision} has a container of {repository}"
            )
        wrong = sorted({c.digest for c in ours if c.digest != wanted})
        if wrong:
            shown = ", ".join(x[:19] if x else "a digest ECS does not report" for x in wrong)
            raise Failed(
                f"ECS runs {shown} (revision {state.revision}), not the requested {wanted[:19]}"
            )
        return state

    async def succeed(self, d: Deployment, state: ServiceState) -> None:
        # a rollback to what ran before the bot knows a revision, not a digest: keep the one
        # verification saw, so its card and history say what runs
        seen = sorted({c.digest for c in self.mine(d, state.containers) if c.digest})
        digest = d.digest or (seen[0] if len(seen) == 1 else "")
        done = await self.store.deployments.finish(
            d.id,
            only_if=[DeployState.RUNNING],
            holder=holder_of(d),
            attempt=d.attempt,
            state=DeployState.SUCCEEDED,
            revision=state.revision,
            digest=digest,
            finished_at=self.clock(),
            detail="",
        )
        crash_point("deploy.succeeded", d.id)
        if done is not None:
            await self.cards.show(done)

    async def fail(self, d: Deployment, failure: Failed) -> None:
        """Record the failure (after a rollback when ECS may have changed), unless this bot is
        stopping or another attempt has taken the deploy since: then it is not this one's."""
        if self.interrupted() or not await self.still_taken(d):
            log.warning("deploy_left_to_resume", deploy=d.id, reason=str(failure)[:200])
            return
        reason = str(failure)
        if failure.touched:
            reason = await self.recover_anew(d, reason)
        done = await self.store.deployments.finish(
            d.id,
            only_if=[DeployState.RUNNING, DeployState.QUEUED],
            holder=holder_of(d),
            attempt=d.attempt,
            state=DeployState.FAILED,
            finished_at=self.clock(),
            detail=reason[:900],
        )
        if done is None:
            return
        log.warning("deploy_failed", deploy=d.id, reason=reason)
        await self.cards.show(done)
        await self.cards.thread(
            done,
            Message(
                text=f"{user(d.requester)} {d.kind} #{d.id} to {d.model}/{d.env} failed: "
                f"{escape(reason)}"
            ),
        )

    async def still_taken(self, d: Deployment) -> bool:
        fresh = await self.store.deployments.get(d.id)
        return fresh is not None and fresh.attempt == d.attempt and not fresh.state.finished

    async def recover_anew(self, d: Deployment, reason: str) -> str:
        """After a failure outside ``run`` (the bot crashed, or a reattached deploy did not
        verify): roll back only if ECS no longer runs the revision recorded before the deploy."""
        fresh = await self.store.deployments.get(d.id)
        previous = fresh.previous_revision if fresh is not None else None
        try:
            now = await self.current(d)
        except BotError as exc:
            return f"{reason}; ECS could not be read ({exc}), so nothing was rolled back"
        if previous is None or now is None:
            return f"{reason}; what ECS ran before is unknown, so nothing was rolled back"
        if now.revision == previous:
            return f"{reason}; ECS runs revision {previous} as before, nothing rolled back"
        last = await self.store.deployments.last_good(d.model, d.env, before=d.id)
        digest = last.digest if last is not None and last.revision == previous else ""
        try:
            async with self.configs.checkout(d.model, d.env) as config:
                return f"{reason}; {await self.roll_back(d, config, (previous, digest), reason)}"
        except BotError as exc:
            return f"{reason}; no rollback possible: {exc}"

    async def reap(self) -> None:
        """When this replica starts leading: end the ecspresso groups recorded on deploys
        that no longer run (a bot died between their end and the group's)."""
        for d in await self.store.deployments.with_process():
            if d.state != DeployState.RUNNING:
                self.track(asyncio.create_task(self.end_recorded(d), name=f"reap-{d.id}"))

    def track(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def end_recorded(self, d: Deployment) -> bool:
        """End the deploy's recorded ecspresso group (if it still runs) before anything touches
        its environment; False while it may still run (its lock then stays held)."""
        if d.ecspresso_pgid is None:
            return True
        group = ProcessGroup(d.ecspresso_pgid, d.ecspresso_fingerprint or "")
        if self.deployer is None or not await self.deployer.end_group(group):
            log.error("deploy_ecspresso_still_running", deploy=d.id, pgid=group.pgid)
            return False
        log.warning("deploy_ecspresso_ended", deploy=d.id, pgid=group.pgid)
        await self.store.deployments.clear_process(d.id, attempt=d.attempt)
        return True

    async def resume(self, found: Deployment) -> None:
        """Take the running deploy (an earlier runner's writes are refused from here on, and
        a live runner's lease keeps it from being taken); then, in a task of its own, end the
        ecspresso the earlier runner left and go on from where it was."""
        d = await self.store.deployments.take(
            found.id, only_if=[DeployState.RUNNING], attempt=found.attempt, lease=self.lease
        )
        if d is None:
            return
        log.info("deploy_adopted", deploy=d.id, attempt=d.attempt)
        with fenced(None):  # from here its lease, not the leadership, makes it this replica's
            task = asyncio.create_task(self.carry_on(d), name=f"reattach-{d.id}")
        self.track(task)
        self.hold(d, task)

    async def carry_on(self, d: Deployment) -> None:
        if await self.end_recorded(d):
            await self.guarded(d, self.resumed)

    async def resumed(self, d: Deployment) -> None:
        """Where the deploy was when the bot stopped decides: before ecspresso, run it; after
        it, verify; during a rollback, recover anew. During ecspresso, ECS decides: changed
        (new revision or deployment) -> follow the rollout and verify; unchanged -> run
        ecspresso again, once."""
        log.info("deploy_resumed", deploy=d.id, step=d.step, ecspresso_runs=d.ecspresso_runs)
        if d.step == Step.STARTING:
            return await self.first_run(d)
        if d.step == Step.ROLLING_BACK:
            raise Failed(d.detail or "the bot stopped during the rollback")
        if d.step == Step.ECSPRESSO:
            before = ecs_from_snapshot(d.ecs_before)
            now = await self.current(d)
            if before is None or now is None:
                raise Failed("the bot stopped while ecspresso ran")
            if not now.changed_since(before):
                if d.ecspresso_runs >= MAX_ECSPRESSO_RUNS:
                    raise Failed(
                        f"ecspresso was interrupted {d.ecspresso_runs} times; ECS unchanged "
                        f"(revision {before.revision}), nothing rolled back",
                        touched=False,
                    )
                log.warning("deploy_ecspresso_rerun", deploy=d.id)
                registered = await self.registered_meanwhile(d, before)
                return await self.first_run(d, registered=registered)
            log.info("deploy_following_rollout", deploy=d.id, revision=now.revision)
        await self.follow(d)

    async def follow(self, d: Deployment) -> None:
        """Verify what ECS runs (following the rollout until it settles)."""
        try:
            state = await self.verify(d)
        except BotError as exc:
            raise Failed(f"could not verify on ECS: {exc}") from None
        await self.succeed(d, state)
