"""The lifecycle a trial drives, as people and GitLab would: train -> stg -> prod with two
approvals, and a burst of webhooks. Every step can be run again after a restart: it looks at
what the store already has, and sends again only what the bot never answered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from bot.sandbox.crashes.observe import DEPLOY_FINAL, RUN_FINAL, StoreReader, StoreView
from bot.sandbox.crashes.slack import Sent, SlackSide
from bot.sandbox.gitlab.hooks import pipeline_story
from bot.sandbox.people import PEOPLE, WEBHOOK_SECRET, by_name
from bot.sandbox.slack.state import Message
from bot.sandbox.webhook_replay import gitlab_headers

STEPS = ("train", "stg", "prod", "webhooks")
STEP_TIMEOUT = 40.0  # a step that never ends is reported by the invariants, not here
QUIET_TIMEOUT = 15.0
POLL = 0.1
CI_PIPELINE = 501  # the webhook burst's first pipeline (its `unit` job fails: a thread reply)
SENDERS = 20  # pipelines whose deliveries GitLab sends at the same time


class StepTimedOut(Exception):
    """A step did not reach its goal within STEP_TIMEOUT (the invariants will say why)."""


@dataclass
class Hook:
    key: str
    body: bytes
    event: str
    acked: bool = False


@dataclass
class Driver:
    side: SlackSide
    reader: StoreReader
    bot_url: str
    session: aiohttp.ClientSession
    commands: dict[str, Sent] = field(default_factory=dict)  # what each step sent
    hooks: list[list[Hook]] = field(default_factory=list)  # per pipeline, in order
    pipelines: int = 1  # how many failing pipelines the webhook burst tells of
    sending: asyncio.Event = field(default_factory=asyncio.Event)  # set as the burst begins

    async def run(self, steps: tuple[str, ...]) -> None:
        for step in steps:
            await self.quiet()
            await getattr(self, step)()

    async def view(self) -> StoreView:
        return await self.reader.view()

    async def until(self, goal: Callable[[StoreView], bool], what: str) -> StoreView:
        started = time.monotonic()
        while time.monotonic() - started < STEP_TIMEOUT:
            view = await self.view()
            if goal(view):
                return view
            await asyncio.sleep(POLL)
        raise StepTimedOut(f"timed out waiting for {what}")

    async def quiet(self) -> None:
        """Until the bot has run every interaction it recorded (a restarted bot first finishes
        what its predecessor acked), so that nothing is sent twice by mistake."""
        started = time.monotonic()
        while time.monotonic() - started < QUIET_TIMEOUT:
            if not (await self.view()).pending_interactions:
                return
            await asyncio.sleep(POLL)

    def unanswered(self, name: str) -> bool:
        """True when the step has not sent yet, or its send was neither acked nor answered
        (the person saw an error: they try again)."""
        sent = self.commands.get(name)
        return sent is None or (not sent.acked and not self.side.replies(sent))

    def refused(self, name: str, view: StoreView) -> bool:
        """The step's command was answered and nothing of it is left to run."""
        sent = self.commands.get(name)
        return sent is not None and bool(self.side.replies(sent)) and not view.pending_interactions

    def said(self, name: str) -> str:
        sent = self.commands.get(name)
        replies = self.side.replies(sent) if sent is not None else []
        return " | ".join(str(r.get("text", ""))[:200] for r in replies) or "no reply"

    async def command(self, name: str, text: str, started: Callable[[StoreView], bool]) -> None:
        if not started(await self.view()) and self.unanswered(name):
            command, _, rest = text.partition(" ")
            self.commands[name] = await self.side.command(PEOPLE[0], command, rest)

    async def train(self) -> None:
        await self.command("train", "/train fraud ref=main dataset=v7", lambda v: bool(v.runs))
        # a run that succeeded is usable (deployable) once its results are read: its verdict
        await self.until(
            lambda v: any(s in RUN_FINAL for s in v.runs.values()) and not v.unjudged,
            "a run to end and be judged",
        )

    async def stg(self) -> None:
        await self.deploy("stg")

    async def deploy(self, env: str) -> None:
        def started(v: StoreView) -> bool:
            return v.deploy_of(env) is not None

        await self.command(env, f"/deploy fraud {env}", started)
        view = await self.until(lambda v: started(v) or self.refused(env, v), f"a deploy to {env}")
        found = view.deploy_of(env)
        if found is None:
            raise StepTimedOut(f"/deploy fraud {env} started nothing: {self.said(env)}")
        if found[1] == "awaiting approval":
            await self.approve(found[0])
        await self.until(lambda v: _final(v.deploy_of(env)), f"the deploy to {env} to end")

    async def prod(self) -> None:
        await self.deploy("prod")

    async def approve(self, deploy: int) -> None:
        """Bob and Carol click Approve on the deploy's card (once it is in Slack)."""
        for name in ("bob", "carol"):
            step = f"approve:{name}"
            if not self.unanswered(step):
                continue
            card = await self.card(f"deploy:{deploy}")
            view = await self.view()
            if view.deploy_of("prod") != (deploy, "awaiting approval"):
                return
            person = by_name(name)
            assert person is not None
            self.commands[step] = await self.side.click(person, card, "Approve")
            await self.quiet()

    async def card(self, key: str) -> Message:
        started = time.monotonic()
        while time.monotonic() - started < STEP_TIMEOUT:
            where = (await self.view()).cards.get(key)
            for message in self.side.slack.messages if where else []:
                if (message.channel, message.ts) == where and message.blocks:
                    return message
            await asyncio.sleep(POLL)
        raise StepTimedOut(f"timed out waiting for the card {key} in Slack")

    async def webhooks(self) -> None:
        """GitLab delivers failing pipelines' stories (each in order, ``SENDERS`` pipelines at
        a time); what the bot did not answer 200 is delivered again with the same
        Idempotency-Key, as GitLab retries."""
        if not self.hooks:
            for pipeline in range(CI_PIPELINE, CI_PIPELINE + self.pipelines):
                story = pipeline_story("ml/fraud", pipeline, fail="unit")
                self.hooks.append(
                    [
                        Hook(f"crash-{pipeline}-{n}", d.payload(), d.event)
                        for n, d in enumerate(story)
                    ]
                )
        self.sending.set()
        senders = asyncio.Semaphore(SENDERS)

        async def send(story: list[Hook]) -> None:
            async with senders:
                for hook in story:
                    if not hook.acked:
                        hook.acked = await self.deliver(hook)

        await asyncio.gather(*(send(story) for story in self.hooks))
        await self.until(lambda v: not v.pending_deliveries, "the webhooks to be processed")

    async def deliver(self, hook: Hook) -> bool:
        headers = gitlab_headers(hook.body, WEBHOOK_SECRET, idempotency_key=hook.key)
        try:
            async with self.session.post(
                f"{self.bot_url}/gitlab/webhook", data=hook.body, headers=headers
            ) as response:
                await response.read()
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


def _final(found: tuple[int, str] | None) -> bool:
    return found is not None and found[1] in DEPLOY_FINAL
