"""Uploading a file (the daily digest's chart) into a channel with Slack's external upload flow:
files.getUploadURLExternal, a POST of the bytes to the upload URL, files.completeUploadExternal.

slack_sdk's ``files_upload_v2`` runs the three steps with the client's retry handlers (the
bounded 429 / 5xx / connection handlers of ``integrations/slack.py``, the upload POST
included); the whole upload is bounded by ``timeout``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import ExternalError
from bot.reconciler import SendFailed
from integrations.slack import SlackCards, call_result

log = structlog.get_logger(__name__)


class SlackFiles:
    """Shares files into channels; a ``#name`` is resolved to its ID first (the completion
    step takes IDs only)."""

    def __init__(
        self, client: AsyncWebClient, *, timeout: float = 60.0, cards: SlackCards | None = None
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._cards = cards or SlackCards(client)

    async def upload_file(
        self,
        channel: str,
        filename: str,
        data: bytes,
        title: str,
        initial_comment: str,
        thread_ts: str | None = None,
    ) -> str:
        """Shares ``data`` in ``channel`` (in the thread at ``thread_ts``); the file's id."""
        if not data:
            raise ValueError(f"{filename}: an upload needs at least one byte")
        async with self._plainly(f"Slack file upload of {filename} to {channel}"):
            channel_id = await self._cards.channel_id(channel)
            response = await self._client.files_upload_v2(
                channel=channel_id,
                content=data,
                filename=filename,
                title=title,
                initial_comment=initial_comment,
                thread_ts=thread_ts,
            )
        file_id = str(response["file"]["id"])
        log.info("slack.file_uploaded", channel=channel_id, file_id=file_id, size=len(data))
        return file_id

    async def find_file(self, channel: str, filename: str, *, oldest: float) -> str | None:
        """The id of a file named ``filename`` shared in ``channel`` since ``oldest`` (epoch
        seconds), from the channel's history: an upload whose answer was lost, or whose sender
        died before it recorded it, is found instead of shared twice."""

        def shares(message: dict[str, Any]) -> bool:
            return any(_named(f, filename) for f in message.get("files") or [])

        async with self._plainly(f"Slack history of {channel}"):
            found = await self._cards.find_message(channel, shares, oldest=oldest)
        if found is None:
            return None
        return next(str(f["id"]) for f in found[1]["files"] if _named(f, filename))

    @contextlib.asynccontextmanager
    async def _plainly(self, what: str) -> AsyncIterator[None]:
        """``what`` within the timeout; whatever fails is an ExternalError naming it."""
        try:
            async with asyncio.timeout(self._timeout):
                yield
        except TimeoutError:
            raise ExternalError(f"{what} timed out after {self._timeout:g} s") from None
        except SendFailed as err:
            raise ExternalError(f"{what} failed: {err.reason}") from None
        except (SlackApiError, SlackRequestError, aiohttp.ClientError) as err:
            reason = "upload refused" if isinstance(err, SlackRequestError) else call_result(err)
            raise ExternalError(f"{what} failed: {reason}") from None


def _named(entry: object, filename: str) -> bool:
    return isinstance(entry, dict) and entry.get("name") == filename and "id" in entry
