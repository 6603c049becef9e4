"""Replays a GitLab webhook delivery (a JSON file) into the bot with the headers GitLab sends."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiohttp

GITLAB_VERSION = "18.0.0"
EVENT_HEADERS = {
    "pipeline": "Pipeline Hook",
    "build": "Job Hook",
    "merge_request": "Merge Request Hook",
    "deployment": "Deployment Hook",
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "issue": "Issue Hook",
    "note": "Note Hook",
    "wiki_page": "Wiki Page Hook",
    "release": "Release Hook",
    "feature_flag": "Feature Flag Hook",
    "emoji": "Emoji Hook",
}


class ReplayError(Exception):
    """The file could not be read or the bot refused the delivery."""


def gitlab_headers(
    body: bytes, token: str, *, idempotency_key: str | None = None
) -> dict[str, str]:
    """The headers of a GitLab webhook delivery of ``body`` (a fresh delivery unless a key is
    given: a redelivery carries the same Idempotency-Key)."""
    try:
        kind = str(json.loads(body).get("object_kind", ""))
    except (ValueError, AttributeError, RecursionError):
        kind = ""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"GitLab/{GITLAB_VERSION}",
        "X-Gitlab-Event": EVENT_HEADERS.get(kind, "System Hook"),
        "X-Gitlab-Token": token,
        "X-Gitlab-Instance": "https://gitlab.example.com",
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "Idempotency-Key": idempotency_key or str(uuid.uuid4()),
    }


async def replay(session: aiohttp.ClientSession, bot_url: str, path: Path, token: str) -> str:
    """POST the file to the bot's /gitlab/webhook; the bot's answer (HTTP 200) or ReplayError."""
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror}") from None
    headers = gitlab_headers(body, token)
    try:
        async with session.post(f"{bot_url}/gitlab/webhook", data=body, headers=headers) as resp:
            answer = (await resp.text()).strip()
            status = resp.status
    except aiohttp.ClientError as exc:
        raise ReplayError(f"the bot did not answer: {exc}") from exc
    if status != 200:
        raise ReplayError(f"the bot answered HTTP {status}: {answer}")
    return f"{headers['X-Gitlab-Event']} from {path.name}: HTTP 200 {answer}"
