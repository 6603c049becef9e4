"""The Slack Web API client (retries bounded, every call counted), the calls a card needs
(post, edit and find by message metadata) and a cached user directory."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.jitter import Jitter
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.errors import ExternalError, NotFound
from bot.metrics import Metrics
from bot.reconciler import SendFailed, carries

K = TypeVar("K")
V = TypeVar("V")

_CALL_ERRORS = (SlackApiError, aiohttp.ClientError, TimeoutError)
"""What a Web API call raises once its retries are spent."""


def call_result(error: BaseException) -> str:
    """The metrics label for a failed call: Slack's error code, ``http_<status>`` or the cause."""
    if isinstance(error, SlackApiError):
        code = error.response.get("error") if isinstance(error.response.data, dict) else None
        return str(code) if code else f"http_{error.response.status_code}"
    if isinstance(error, TimeoutError):
        return "timeout"
    return "connection_error"


class MeteredWebClient(AsyncWebClient):
    """An ``AsyncWebClient`` that counts every call by method and result."""

    def __init__(self, *, metrics: Metrics | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            response = await super().api_call(api_method, **kwargs)
        except _CALL_ERRORS as err:
            self._count(api_method, call_result(err))
            raise
        self._count(api_method, "ok")
        return response

    def _count(self, method: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.slack_call(method, result)


class ScaledJitter(Jitter):
    """Up to ``scale`` seconds of random jitter (slack_sdk's default adds up to a full second)."""

    def __init__(self, scale: float) -> None:
        self._scale = scale

    def recalculate(self, duration: float) -> float:
        return duration + random.random() * self._scale  # noqa: S311 - jitter, not a secret


def retry_handlers(
    *,
    rate_limited: int = 3,
    server_errors: int = 2,
    connection_errors: int = 2,
    backoff: float = 0.5,
    jitter: float = 1.0,
) -> list[AsyncRetryHandler]:
    """slack_sdk's handlers, bounded. A 429 waits Retry-After + up to 1 s (fixed in slack_sdk).

    The handlers share one attempt counter per call, so a call makes at most
    ``1 + max(rate_limited, server_errors, connection_errors)`` attempts in all.
    5xx and connection errors wait ``backoff * 2**attempt`` + up to ``jitter`` seconds.
    """
    interval = BackoffRetryIntervalCalculator(backoff_factor=backoff, jitter=ScaledJitter(jitter))
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limited),
        AsyncServerErrorRetryHandler(max_retry_count=server_errors, interval_calculator=interval),
        AsyncConnectionErrorRetryHandler(
            max_retry_count=connection_errors, interval_calculator=interval
        ),
    ]


def build_web_client(
    token: str,
    *,
    base_url: str | None,
    timeout: float,
    metrics: Metrics | None,
    handlers: list[AsyncRetryHandler] | None = None,
) -> AsyncWebClient:
    """The bot's Slack client; ``base_url`` points it at a stand-in (keep the trailing slash)."""
    options: dict[str, Any] = {"token": token, "timeout": max(1, math.ceil(timeout))}
    if base_url is not None:
        options["base_url"] = base_url
    return MeteredWebClient(
        metrics=metrics,
        retry_handlers=handlers if handlers is not None else retry_handlers(),
        **options,
    )


GONE = frozenset({"message_not_found", "cant_update_message", "thread_not_found"})
"""Errors that mean the card's message is no longer there: post it (or find it) again."""
PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "missing_scope",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
    }
)
"""Errors a retry will not cure soon: retried anyway, but seldom (an operator may fix them)."""


def send_failed(method: str, error: BaseException) -> SendFailed:
    """A failed card call as the reconciler sees it: the cause, Retry-After, gone or permanent."""
    reason = call_result(error)
    retry_after: float | None = None
    if isinstance(error, SlackApiError) and error.response.status_code == 429:
        raw = error.response.headers.get("Retry-After") or error.response.headers.get("retry-after")
        retry_after = float(raw) if raw and str(raw).replace(".", "", 1).isdigit() else 1.0
    return SendFailed(
        method,
        reason,
        retry_after=retry_after,
        gone=reason in GONE,
        permanent=reason in PERMANENT,
    )


class SlackCards:
    """Posts, edits and finds cards; each message carries its card key as message metadata.

    Finding reads at most ``pages`` pages of ``page_size`` messages newer than ``oldest`` (a
    thread's replies for a reply), so a lookup stays bounded however busy the channel is.
    """

    def __init__(self, client: AsyncWebClient, *, pages: int = 5, page_size: int = 200) -> None:
        self._client = client
        self._pages = pages
        self._page_size = page_size
        self._ids: dict[str, str] = {}

    async def post_card(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        *,
        metadata: dict[str, Any],
        thread_ts: str | None = None,
    ) -> tuple[str, str]:
        try:
            response = await self._client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, metadata=metadata
            )
        except _CALL_ERRORS as err:
            raise send_failed("chat.postMessage", err) from None
        posted = str(response["channel"])
        self._ids[channel] = posted
        return posted, str(response["ts"])

    async def update_card(
        self,
        channel: str,
        ts: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        *,
        metadata: dict[str, Any],
    ) -> None:
        try:
            await self._client.chat_update(
                channel=channel, ts=ts, text=text, blocks=blocks, metadata=metadata
            )
        except _CALL_ERRORS as err:
            raise send_failed("chat.update", err) from None

    async def find_card(
        self, channel: str, metadata: dict[str, Any], *, oldest: float, thread_ts: str | None
    ) -> tuple[str, str] | None:
        """The message in ``channel`` (or in the thread at ``thread_ts``) carrying ``metadata``."""
        found = await self.find_message(
            channel, lambda message: carries(message, metadata), oldest=oldest, thread_ts=thread_ts
        )
        return None if found is None else (found[0], str(found[1]["ts"]))

    async def find_message(
        self,
        channel: str,
        match: Callable[[dict[str, Any]], bool],
        *,
        oldest: float,
        thread_ts: str | None = None,
    ) -> tuple[str, dict[str, Any]] | None:
        """The channel's id and the newest message since ``oldest`` (in the thread at
        ``thread_ts``) that ``match`` accepts, looking through at most the adapter's pages."""
        channel_id = await self.channel_id(channel)
        method = "conversations.replies" if thread_ts else "conversations.history"
        cursor: str | None = None
        for _ in range(self._pages):
            try:
                page = await self._history(channel_id, thread_ts, oldest, cursor)
            except _CALL_ERRORS as err:
                raise send_failed(method, err) from None
            for message in page.get("messages") or []:
                if isinstance(message, dict) and match(message):
                    return channel_id, message
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                return None
        return None

    async def _history(
        self, channel_id: str, thread_ts: str | None, oldest: float, cursor: str | None
    ) -> AsyncSlackResponse:
        common: dict[str, Any] = {
            "channel": channel_id,
            "include_all_metadata": True,
            "limit": self._page_size,
            "cursor": cursor,
        }
        if thread_ts is not None:
            return await self._client.conversations_replies(ts=thread_ts, **common)
        return await self._client.conversations_history(oldest=f"{oldest:.6f}", **common)

    async def channel_id(self, channel: str) -> str:
        """``C123`` as it is; a ``#name`` or ``name`` through conversations.list (cached)."""
        if channel[:1] in ("C", "G", "D") and channel[1:].isalnum() and channel.isupper():
            return channel
        if channel in self._ids:
            return self._ids[channel]
        name = channel.removeprefix("#")
        cursor: str | None = None
        for _ in range(self._pages * 4):
            try:
                page = await self._client.conversations_list(
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=self._page_size,
                    cursor=cursor,
                )
            except _CALL_ERRORS as err:
                raise send_failed("conversations.list", err) from None
            for found in page.get("channels") or []:
                if isinstance(found, dict) and found.get("name") == name:
                    self._ids[channel] = str(found["id"])
                    return self._ids[channel]
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        raise SendFailed("conversations.list", "channel_not_found", permanent=True)


class TtlCache(Generic[K, V]):
    """A small in-memory cache whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        value = await load()
        self._entries[key] = (self._clock() + self._ttl, value)
        return value


class SlackDirectory:
    """Who is in a user group and what a user is called, cached for ``ttl`` seconds."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._groups: TtlCache[str, frozenset[str]] = TtlCache(ttl, clock)
        self._names: TtlCache[str, str] = TtlCache(ttl, clock)

    async def group_members(self, group_id: str) -> frozenset[str]:
        return await self._groups.get(group_id, lambda: self._load_members(group_id))

    async def user_name(self, user_id: str) -> str:
        """The user's full name, or their handle when they have not set one."""
        return await self._names.get(user_id, lambda: self._load_name(user_id))

    async def _load_members(self, group_id: str) -> frozenset[str]:
        try:
            response = await self._client.usergroups_users_list(usergroup=group_id)
        except _CALL_ERRORS as err:
            raise _directory_error(err, f"no Slack user group {group_id}") from None
        return frozenset(response.get("users") or [])

    async def _load_name(self, user_id: str) -> str:
        try:
            response = await self._client.users_info(user=user_id)
        except _CALL_ERRORS as err:
            raise _directory_error(err, f"no Slack user {user_id}") from None
        user: dict[str, Any] = response.get("user") or {}
        profile: dict[str, Any] = user.get("profile") or {}
        return str(profile.get("real_name") or user.get("real_name") or user.get("name") or "")


def _directory_error(err: Exception, not_found: str) -> Exception:
    result = call_result(err)
    if result in ("no_such_subteam", "user_not_found"):
        return NotFound(not_found)
    return ExternalError(f"Slack directory lookup failed: {result}")
