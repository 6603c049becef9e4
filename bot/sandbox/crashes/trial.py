"""One trial: start the bot, drive the lifecycle, let it die (a named point or a seeded random
SIGKILL), start it again on the same store, drive to the end, settle, check the invariants."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from bot.sandbox.aws import MotoServer
from bot.sandbox.crashes.flows import STEPS, Driver, StepTimedOut
from bot.sandbox.crashes.invariants import Broken, check
from bot.sandbox.crashes.observe import StoreReader, ecspresso_runs
from bot.sandbox.crashes.process import BotProcess, kill_all, processes_with
from bot.sandbox.crashes.slack import SlackSide
from bot.sandbox.crashes.world import World, build_world
from bot.sandbox.slack import SlackStandIn
from bot.store import Store

MODEL = "fraud"  # the model the flows train and deploy
SETTLE_TIMEOUT = 30.0
POINT_GRACE = 5.0  # how long a flow that ended may wait for its crash point still
QUIET_SLACK = 0.5
RANDOM_WINDOW = (0.3, 9.0)  # seconds into the full flow where a random kill lands
BURST_WINDOW = (0.1, 0.8)  # seconds into a life of the webhook burst where a kill lands


@dataclass(frozen=True)
class Trial:
    """What to drive and how the first bot dies: at ``crash_at`` (``name[@subject]``, on its
    ``crash_after``-th hit) or by SIGKILL ``kill_after`` seconds into the flow (into the
    webhook burst, when ``kill_in_burst``)."""

    name: str
    steps: tuple[str, ...]
    crash_at: str = ""
    crash_after: int = 1
    kill_after: float | None = None
    more_kills: tuple[float, ...] = ()  # each a later life, SIGKILLed this long into it
    pipelines: int = 1  # failing pipelines in the webhook burst
    kill_in_burst: bool = False  # each kill's moment counts from its life's first delivery


TRAIN, STG, PROD = ("train",), ("train", "stg"), ("train", "stg", "prod")
NAMED: dict[str, Trial] = {
    t.name: t
    for t in (
        Trial("interaction.recorded", TRAIN, "interaction.recorded@command"),
        Trial("interaction.started", TRAIN, "interaction.started@command"),
        Trial("interaction.answered", PROD, "interaction.answered@click"),  # an Approve
        Trial("run.recorded", TRAIN, "run.recorded"),
        Trial("run.launched", TRAIN, "run.launched"),
        Trial("deploy.recorded", STG, "deploy.recorded"),
        Trial("ecspresso.diff", STG, "ecspresso.diff"),
        Trial("card.posted", PROD, "card.posted@deploy:2"),  # prod's approval card
        Trial("ecspresso.deploy", STG, "ecspresso.deploy"),
        Trial("deploy.succeeded", STG, "deploy.succeeded"),
        Trial("webhook.recorded", ("webhooks",), "webhook.recorded", crash_after=4),
        Trial("webhook.handled", ("webhooks",), "webhook.handled", crash_after=2),
        Trial("reply.posted", ("webhooks",), "reply.posted"),
    )
}


def random_trial(seed: int) -> Trial:
    """The whole lifecycle, SIGKILLed at a moment drawn from ``seed``."""
    moment = round(random.Random(seed).uniform(*RANDOM_WINDOW), 2)  # noqa: S311 - not secret
    return Trial(f"random-{seed}", STEPS, kill_after=moment)


def burst_trial(seed: int, *, kills: int, pipelines: int) -> Trial:
    """A burst of ``pipelines`` failing pipelines' webhooks with ``kills`` SIGKILLs, each at
    a moment drawn from ``seed`` into a life of the bot (restarted after each)."""
    draw = random.Random(seed)  # noqa: S311 - not secret
    moments = tuple(round(draw.uniform(*BURST_WINDOW), 2) for _ in range(kills))
    return Trial(
        f"burst-{seed}",
        ("webhooks",),
        kill_after=moments[0],
        more_kills=moments[1:],
        pipelines=pipelines,
        kill_in_burst=True,
    )


@dataclass
class Outcome:
    trial: Trial
    broken: Broken = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)  # where the burst was at each kill
    seconds: float = 0.0
    error: str = ""  # the harness could not run the trial

    @property
    def reached(self) -> bool:
        """The first bot died as the trial meant (a random kill always counts)."""
        return self.trial.kill_after is not None or bool(self.hits)

    def summary(self) -> str:
        if self.error:
            return "harness error"
        if not self.reached:
            return "crash point not reached"
        if not self.broken:
            return "clean"
        return "; ".join(sorted(self.broken))

    def report(self) -> str:
        lines = [f"trial {self.trial.name}: {self.summary()} ({self.seconds:.1f}s)"]
        lines += [f"  crash point hit: {hit}" for hit in self.hits]
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  kill {n}: {where}" for n, where in enumerate(self.kills, 1)]
        lines += [f"  ERROR {self.error}"] if self.error else []
        for name, found in sorted(self.broken.items()):
            lines += [f"  BROKEN {name}: {line}" for line in found]
        return "\n".join(lines)


async def run_trial(trial: Trial, aws: MotoServer, store_url: str, directory: Path) -> Outcome:
    started = time.monotonic()
    outcome = Outcome(trial)
    store = Store.from_url(store_url)
    try:
        await store.migrate()
    finally:
        await store.close()
    world = await build_world(directory, aws, store_url)
    reader = StoreReader(store_url)
    bot = BotProcess(world.config, world.bot_url, world.bot_env(), directory / "bot.log")
    marker = f"MLOPS_ECSPRESSO_STANDIN_CONTROL={world.control}"
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            side = SlackSide(world.stand_ins.slack, world.catcher, world.bot_url, session)
            driver = Driver(side, reader, world.bot_url, session, pipelines=trial.pipelines)
            await first_life(bot, driver, trial, outcome)
            for moment in trial.more_kills:
                await first_life(bot, driver, replace(trial, kill_after=moment), outcome)
            await second_life(bot, driver, trial, outcome)
            outcome.broken = await final_checks(bot, reader, side, world, marker)
    finally:
        kill_all(processes_with(marker))
        await bot.stop()
        await world.stop()
        await reader.close()
    outcome.seconds = time.monotonic() - started
    return outcome


async def first_life(bot: BotProcess, driver: Driver, trial: Trial, outcome: Outcome) -> None:
    """Drive until the bot dies (or the flow ends: a random kill then lands on an idle bot)."""
    await bot.start(trial.crash_at, trial.crash_after)
    assert bot.proc is not None
    driver.sending.clear()
    drive = asyncio.ensure_future(driver.run(trial.steps))
    death = asyncio.ensure_future(bot.proc.wait())
    waiting = {drive, death}
    if trial.kill_after is not None:
        waiting.add(asyncio.ensure_future(kill_moment(trial, driver)))
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    for task in waiting:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, StepTimedOut):
        await drive
    if trial.crash_at:  # the store can show a step done just before the point fires
        await bot.died(POINT_GRACE)
    await bot.kill()
    if driver.hooks:
        answered = sum(h.acked for story in driver.hooks for h in story)
        total = sum(len(story) for story in driver.hooks)
        pending = (await driver.view()).pending_deliveries
        outcome.kills.append(f"{answered}/{total} answered, {pending} unprocessed")
    outcome.hits = bot.hits()
    if not outcome.reached:
        outcome.notes.append(f"crash point {trial.crash_at} was never reached")


async def kill_moment(trial: Trial, driver: Driver) -> None:
    """Until the moment the trial kills this life: ``kill_after`` seconds from its start, or
    from its first delivery of the burst (a store read before it can take longer than the
    whole window on a loaded machine, and a kill then would find no burst to interrupt)."""
    assert trial.kill_after is not None
    if trial.kill_in_burst:
        await driver.sending.wait()
    await asyncio.sleep(trial.kill_after)


async def second_life(bot: BotProcess, driver: Driver, trial: Trial, outcome: Outcome) -> None:
    """A new bot on the same store: it must finish what the first one left; the people and
    GitLab go on with the flow (sending again only what was never answered)."""
    await bot.start()
    try:
        await driver.run(trial.steps)
    except StepTimedOut as exc:
        outcome.notes.append(str(exc))


async def settle(reader: StoreReader, slack: SlackStandIn) -> list[str]:
    """Until nothing is in flight in the store and Slack has been quiet for a moment; what is
    still moving when the bound runs out."""
    started = time.monotonic()
    moving: list[str] = []
    while time.monotonic() - started < SETTLE_TIMEOUT:
        calls = len(slack.calls)
        await asyncio.sleep(QUIET_SLACK)
        moving = (await reader.view()).unsettled()
        if not moving and len(slack.calls) == calls:
            return []
    return moving


async def final_checks(
    bot: BotProcess, reader: StoreReader, side: SlackSide, world: World, marker: str
) -> Broken:
    await settle(reader, side.slack)
    view = await reader.view()
    running = describe(processes_with(marker))
    await bot.stop()
    left = describe(processes_with(marker))
    orphans = [f"still running after the bot settled: {p}" for p in running]
    orphans += [f"still running after the bot stopped: {p}" for p in left]
    registered = await asyncio.to_thread(registrations, world)
    runs = ecspresso_runs(world.ecspresso_log)
    return check(view, side, world.stand_ins.gitlab, runs, registered, orphans)


def registrations(world: World) -> dict[str, int]:
    """Task definitions registered per environment of the model the flows deploy (each
    target starts with one)."""
    ecs = world.stand_ins.aws.client("ecs")
    found = {}
    for env in world.settings.models[MODEL].environments:
        family = f"{MODEL}-api-{env}"
        listed = ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
        revisions = [arn for arn in listed if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]
        found[env] = max(len(revisions) - 1, 0)
    return found


def describe(pids: list[int]) -> list[str]:
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            found.append(f"{pid} {args.strip()[:160]}")
    return found
