"""The one place that posts and edits cards: one Slack message per thing, edited in place.

Cards go through the outbox (``show_card``/``revise_card``): their desired state is written to
the store and bot.reconciler makes Slack match it, whatever Slack answers and however often the
bot restarts. ``post``/``edit`` remain for messages outside cards. ``edit()`` never blocks the
caller: ``edit()`` records the latest state of a message and a
flusher task per message sends it, at most one ``chat.update`` per ``edit_interval``
(latest state wins). Rate limits and transient errors are retried by the client's retry
handlers; a flusher logs and counts what still fails and never raises.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import ExternalError
from bot.metrics import Metrics
from bot.reconciler import Reconciler

Blocks = list[dict[str, Any]]
SLACK_ERRORS = (SlackApiError, aiohttp.ClientError, TimeoutError)
"""What a Slack call raises once the client's retries are spent."""


@dataclass(frozen=True)
class _Card:
    text: str
    blocks: Blocks | None


def _reason(error: BaseException) -> str:
    """A short, token-free cause: Slack's error code, the HTTP status or the exception type."""
    if isinstance(error, SlackApiError):
        data = error.response.data
        code = data.get("error") if isinstance(data, dict) else None
        return str(code) if code else f"http_{error.response.status_code}"
    return "timeout" if isinstance(error, TimeoutError) else type(error).__name__


class Notifier:
    """Posts and edits cards; coalesces edits per message; honours Slack rate limits."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        edit_interval: float = 1.0,
        metrics: Metrics | None = None,
        logger: Any = None,
        respond_timeout: float = 10.0,
        respond_attempts: int = 2,
        outbox: Reconciler | None = None,
    ) -> None:
        self._client = client
        self.outbox = outbox
        self._interval = edit_interval
        self._metrics = metrics
        self._log = logger if logger is not None else structlog.get_logger(__name__)
        self._respond_timeout = respond_timeout
        self._respond_attempts = respond_attempts
        self._latest: dict[tuple[str, str], _Card] = {}
        self._flushers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._sending: set[tuple[str, str]] = set()
        self._settled = asyncio.Condition()
        self._responses: aiohttp.ClientSession | None = None

    async def show_card(
        self,
        key: str,
        channel: str,
        text: str,
        blocks: Blocks | None = None,
        *,
        parent: str | None = None,
        fresh: bool = False,
    ) -> None:
        """Record what card ``key`` should show (a thread reply under card ``parent``); the
        reconciler posts or edits it. Waits for the store, never for Slack."""
        await self._outbox().states.desire(key, channel, text, blocks, parent=parent, fresh=fresh)

    def revise_card(self, key: str, text: str, blocks: Blocks | None = None) -> None:
        """Like ``show_card`` for a card that exists, without waiting (latest state wins)."""
        self._outbox().revise_later(key, text, blocks)

    def _outbox(self) -> Reconciler:
        if self.outbox is None:
            raise ExternalError("cards need the Slack outbox, and this notifier has none")
        return self.outbox

    async def post(
        self, channel: str, text: str, blocks: Blocks | None = None, *, thread_ts: str | None = None
    ) -> tuple[str, str]:
        """Post a new card; returns ``(channel id, ts)``, the key for later edits."""
        try:
            response = await self._client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, thread_ts=thread_ts
            )
        except SLACK_ERRORS as err:
            raise self._failed("chat.postMessage", _reason(err), channel=channel) from None
        return str(response["channel"]), str(response["ts"])

    def edit(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> None:
        """Schedule the card's new state; returns at once (call from the event loop)."""
        key = (channel, ts)
        self._latest[key] = _Card(text, blocks)
        if key not in self._flushers:
            task = asyncio.get_running_loop().create_task(self._flush_card(key))
            self._flushers[key] = task

    async def ephemeral(
        self, channel: str, user: str, text: str, blocks: Blocks | None = None
    ) -> None:
        try:
            await self._client.chat_postEphemeral(
                channel=channel, user=user, text=text, blocks=blocks
            )
        except SLACK_ERRORS as err:
            raise self._failed("chat.postEphemeral", _reason(err), channel=channel) from None

    async def respond(
        self,
        response_url: str,
        text: str,
        blocks: Blocks | None = None,
        *,
        replace_original: bool = False,
    ) -> None:
        """Answer through a slash command's or click's response_url (ephemeral by default)."""
        payload: dict[str, Any] = {"text": text, "replace_original": replace_original}
        if blocks is not None:
            payload["blocks"] = blocks
        reason = "not_sent"
        for attempt in range(self._respond_attempts):
            if attempt:
                await asyncio.sleep(0.5 * attempt)
            try:
                status = await self._post_response(response_url, payload)
            except (aiohttp.ClientError, TimeoutError) as err:
                reason = _reason(err)
                continue
            if status < 400:
                self._count("response_url", "ok")
                return
            reason = f"http_{status}"
            if status < 500:
                break
        self._count("response_url", reason)
        raise self._failed("response_url", reason)

    async def flush(self) -> None:
        """Wait until every pending edit has been sent (or has finally failed), and every card
        is shown as asked except those backing off after a failure."""
        async with self._settled:
            await self._settled.wait_for(lambda: not self._latest and not self._sending)
        if self.outbox is not None:
            await self.outbox.settled()

    async def close(self) -> None:
        if self.outbox is not None:
            await self.outbox.written()
        await self.flush()
        tasks = list(self._flushers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._responses is not None:
            await self._responses.close()

    async def _flush_card(self, key: tuple[str, str]) -> None:
        """Send the latest state, then hold the slot for one interval so edits coalesce."""
        try:
            while (card := self._latest.pop(key, None)) is not None:
                self._sending.add(key)
                try:
                    await self._update(key, card)
                finally:
                    self._sending.discard(key)
                    await self._notify_settled()
                await asyncio.sleep(self._interval)
        finally:
            del self._flushers[key]

    async def _update(self, key: tuple[str, str], card: _Card) -> None:
        channel, ts = key
        try:
            await self._client.chat_update(
                channel=channel, ts=ts, text=card.text, blocks=card.blocks
            )
        except SLACK_ERRORS as err:
            self._failed("chat.update", _reason(err), channel=channel, ts=ts)
        except Exception:
            self._log.exception("slack.edit_crashed", channel=channel, ts=ts)
            self._error()

    async def _notify_settled(self) -> None:
        async with self._settled:
            self._settled.notify_all()

    async def _post_response(self, url: str, payload: dict[str, Any]) -> int:
        async with self._response_session().post(url, json=payload) as response:
            return response.status

    def _response_session(self) -> aiohttp.ClientSession:
        """One session for every response_url post, keeping its connections: a session per
        post opened a new connection (a TLS handshake with Slack) each time, about a tenth of
        a slash command's processing."""
        if self._responses is None or self._responses.closed:
            timeout = aiohttp.ClientTimeout(total=self._respond_timeout)
            self._responses = aiohttp.ClientSession(timeout=timeout)
        return self._responses

    def _failed(self, method: str, reason: str, **context: str) -> ExternalError:
        """Log and count a call that failed for good; the error to raise (no token in it)."""
        self._log.warning("slack.call_failed", method=method, reason=reason, **context)
        self._error()
        return ExternalError(f"Slack {method} failed: {reason}")

    def _error(self) -> None:
        if self._metrics is not None:
            self._metrics.error("slack")

    def _count(self, method: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.slack_call(method, result)
