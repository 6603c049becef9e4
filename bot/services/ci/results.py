"""CI results in Slack: GitLab events -> one card per pipeline (or merge request, deployment).

Each batch of inbox deliveries is merged with the stored state of its cards, the cards are
published to the channels the routing rules chose, and the merged states (with the thread
replies now posted) are stored in one write. Processing an event again changes nothing:
merging is idempotent, a card is posted once and then edited, and a failed job's trace is
posted once per card thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from bot.config.webhooks import EventKind, RouteFacts, WebhookSettings
from bot.domain.cards import CardRef
from bot.domain.ci import CiCard, Deployment, Job, MergeRequest, Pipeline, card_from_json, merge
from bot.ports import Chat, PipelineJob, PipelineStatus, TrainingEvents
from bot.services.cards import Cards
from bot.services.ci.events import TRACE_LINES, Event, Unreadable, parse, tail
from bot.store.inbox import BatchResult, InboxItem
from bot.views import ci as views
from bot.views.blocks import Block

log = structlog.get_logger(__name__)
LOG_TAIL_TIMEOUT = 15.0
YIELD_EVERY = 25


class JobLogs(Protocol):
    """Where a failed job's trace comes from when its event did not carry one (GitLab API)."""

    async def job_log_tail(self, project: str, job_id: int, lines: int = 30) -> str: ...


class AccuracyReports(Protocol):
    """Hook for the metrics reader: blocks (the accuracy table against the champion) to add
    to the card of a finished pipeline that produced a metrics artifact; None when it did not."""

    async def pipeline_report(
        self, project: str, pipeline: PipelineStatus
    ) -> list[Block] | None: ...


class StateStore(Protocol):
    async def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    async def put_many(self, states: Mapping[str, dict[str, Any]]) -> None: ...

    async def prune(self, older_than: datetime) -> int: ...


class PublishFailed(Exception):
    """Publishing stopped at ``cause``; ``card`` records the replies posted before it."""

    def __init__(self, card: CiCard, cause: Exception) -> None:
        super().__init__(str(cause))
        self.card = card
        self.cause = cause


class NoTraining:
    """Until the training service is wired in: no pipeline belongs to a /train run."""

    async def pipeline_changed(self, project: str, pipeline: PipelineStatus) -> bool:
        return False


def status_of(pipeline: Pipeline) -> PipelineStatus:
    jobs = tuple(
        PipelineJob(id=j.id, name=j.name, stage=j.stage, status=j.status, web_url=j.url)
        for j in pipeline.latest_jobs()
    )
    return PipelineStatus(
        id=pipeline.id,
        status=pipeline.status,
        ref=pipeline.ref,
        sha=pipeline.sha,
        web_url=pipeline.url or "",
        jobs=jobs,
    )


def facts(card: CiCard, kind: EventKind, status: str) -> RouteFacts:
    return RouteFacts(
        kind=kind,
        status=status,
        project=card.project,
        ref=card.route_ref,
        default_branch=card.default_branch,
        source=card.route_source,
    )


def slack_key(card: CiCard, channel: str) -> str:
    """The Cards key of ``card`` in ``channel``, e.g. ``ci:ml/fraud:1234@#ci``."""
    if isinstance(card, MergeRequest):
        ident = f"mr{card.iid}"
    elif isinstance(card, Deployment):
        ident = f"deploy{card.id}"
    else:
        ident = str(card.id)
    key = f"ci:{card.project}:{ident}@{channel}"
    return key if len(key) <= 200 else "ci:" + hashlib.sha256(key.encode()).hexdigest()


class CiResults:
    def __init__(
        self,
        settings: WebhookSettings,
        cards: Cards,
        chat: Chat,
        states: StateStore,
        *,
        training: TrainingEvents | None = None,
        logs: JobLogs | None = None,
        accuracy: AccuracyReports | None = None,
    ) -> None:
        self.settings = settings
        self.cards = cards
        self.chat = chat
        self.states = states
        self.training: TrainingEvents = training or NoTraining()
        self.logs = logs
        self.accuracy = accuracy
        self.gate = asyncio.Semaphore(settings.concurrency)

    async def process(self, items: Sequence[InboxItem]) -> BatchResult:
        """Merge the batch into the cards' stored state, then publish each changed card. Each
        card stands alone: one that cannot be merged, published or stored fails only the
        deliveries behind it (a poison delivery never holds back the rest of its batch)."""
        result = BatchResult()
        groups: dict[str, list[tuple[int, Event]]] = {}
        keys = {item.id: item.key for item in items}
        for n, item in enumerate(items, 1):
            event = self._read(item, result)
            if event is not None:
                groups.setdefault(event.card.key, []).append((item.id, event))
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let webhook acks in between
        stored = await self.states.get_many(list(groups))
        cards: dict[str, CiCard] = {}
        for key, events in groups.items():
            try:
                cards[key] = await self._enriched(self._merged(stored.get(key), events))
            except Exception as err:
                self._fail(result, key, events, keys, f"not merged: {type(err).__name__}")
            await asyncio.sleep(0)
        outcomes = await asyncio.gather(*(self._publish_bounded(c) for c in cards.values()))
        published = [card for card, error in outcomes if error is None]
        unsaved = await self._save(published)
        for card, error in outcomes:
            problem = error or unsaved.get(card.key)
            if problem is None:
                result.done.extend(item_id for item_id, _ in groups[card.key])
            else:
                self._fail(result, card.key, groups[card.key], keys, problem)
        return result

    async def _save(self, cards: Sequence[CiCard]) -> dict[str, str]:
        """One write for the whole batch (the merged states and the thread replies now posted);
        if that fails, one per card, so that only the card that cannot be stored fails."""
        states = {c.key: c.model_dump(mode="json") for c in cards}
        try:
            await self.states.put_many(states)
            return {}
        except Exception:
            log.warning("ci_states_batch_write_failed", cards=len(states))
        problems: dict[str, str] = {}
        for key, state in states.items():
            try:
                await self.states.put_many({key: state})
            except Exception as err:
                problems[key] = f"not stored: {type(err).__name__}"
        return problems

    @staticmethod
    def _fail(
        result: BatchResult,
        card: str,
        events: list[tuple[int, Event]],
        keys: Mapping[int, str],
        reason: str,
    ) -> None:
        for item_id, _ in events:
            result.failed[item_id] = f"{card}: {reason}"
        log.warning(
            "webhook_card_failed",
            card=card,
            deliveries=[keys[item_id] for item_id, _ in events],
            reason=reason,
        )

    async def housekeeping(self, now: datetime) -> None:
        await self.states.prune(now - timedelta(days=self.settings.state_retention_days))

    def _read(self, item: InboxItem, result: BatchResult) -> Event | None:
        try:
            kind = EventKind(item.kind)
            body = json.loads(item.body)
            if not isinstance(body, dict):
                raise Unreadable("the payload is not a JSON object")
            return parse(kind, body)
        except ValueError as err:  # Unreadable, bad JSON, a kind this version does not know
            result.ignored[item.id] = str(err)[:300]
            log.warning("webhook_unreadable", key=item.key, kind=item.kind, reason=str(err)[:300])
            return None

    def _merged(self, stored: dict[str, Any] | None, events: list[tuple[int, Event]]) -> CiCard:
        """Merge each event in, routing it by its kind and status and the merged card's facts
        (an MR pipeline's job events do not say it is one; its pipeline events do)."""
        card = card_from_json(stored) if stored else None
        for _, event in events:
            card = merge(card, event.card)
            found = [
                channel
                for kind, status in event.routes
                for channel in self.settings.channels_for(facts(card, kind, status))
            ]
            card = card.model_copy(update={"channels": list(dict.fromkeys(card.channels + found))})
        assert card is not None
        return card

    async def _enriched(self, card: CiCard) -> CiCard:
        """Hand pipelines to the training service first; add the accuracy report once."""
        if not isinstance(card, Pipeline):
            return card
        status = status_of(card)
        if await self.training.pipeline_changed(card.project, status):
            card = card.model_copy(update={"owner": "training"})
        if card.finished and card.report is None and self.accuracy is not None:
            blocks = await self.accuracy.pipeline_report(card.project, status)
            card = card.model_copy(update={"report": blocks or []})
        return card

    async def _publish_bounded(self, card: CiCard) -> tuple[CiCard, str | None]:
        """Publish ``card``; the card with the replies it now has, and why it failed if so."""
        async with self.gate:
            try:
                return await self._publish(card), None
            except PublishFailed as failed:
                log.warning("ci_card_failed", card=card.key, error=type(failed.cause).__name__)
                return failed.card, str(failed.cause)[:300] or type(failed.cause).__name__

    async def _publish(self, card: CiCard) -> CiCard:
        if isinstance(card, Pipeline) and card.owner:
            return card  # the run's own card shows it
        message = views.ci_card(card)
        for channel in card.channels:
            try:
                ref = await self.cards.publish(slack_key(card, channel), channel, message)
                if isinstance(card, Pipeline):
                    card = await self._failed_job_traces(card, channel, ref)
            except Exception as err:
                raise PublishFailed(card, err) from err
        return card

    async def _failed_job_traces(self, pipeline: Pipeline, channel: str, card: CardRef) -> Pipeline:
        """Each failed job once in the card's thread: its name and the end of its trace."""
        for job in pipeline.latest_jobs():
            reply = f"{channel}#{job.id}"
            if job.status != "failed" or reply in pipeline.replied:
                continue
            trace = job.trace or await self._log_tail(pipeline.project, job)
            message = views.job_failure(job, trace)
            await self.cards.reply(card.key, message, name=f"job:{job.id}")
            pipeline = pipeline.model_copy(update={"replied": [*pipeline.replied, reply]})
        return pipeline

    async def _log_tail(self, project: str, job: Job) -> str | None:
        if self.logs is None:
            return None
        try:
            async with asyncio.timeout(LOG_TAIL_TIMEOUT):
                return tail(await self.logs.job_log_tail(project, job.id, TRACE_LINES))
        except Exception as err:
            log.warning("ci_job_trace_unavailable", job=job.id, error=type(err).__name__)
            return None
