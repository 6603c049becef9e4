"""The Slack Web API client (retries bounded, every call counted) and a cached user directory."""

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
