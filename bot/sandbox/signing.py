"""Slack request signing (v0 HMAC-SHA256), as Slack signs what it sends to an app."""

from __future__ import annotations

import hashlib
import hmac
import time


def slack_signature(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str, body: str, *, timestamp: int | None = None, content_type: str | None = None
) -> dict[str, str]:
    """Headers Slack would send with ``body``; ``timestamp`` defaults to now."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": slack_signature(secret, stamp, body),
        "Content-Type": content_type or "application/x-www-form-urlencoded",
    }
    return headers
