"""POST /gitlab/webhook: authenticate, store the delivery durably, answer 200 at once.

The token header is checked (in constant time, against every configured secret) before the
body is read; with a signing token the Standard Webhooks signature over the raw bytes is
checked too, with a replay window. Only then is the body read (bounded) and parsed (bounded
nesting), and the token checked again against the project's own secret. Nothing else happens
before the answer: the worker processes the inbox afterwards. GitLab disables a hook after
repeated 4xx, so a delivery with a valid token is never answered 4xx unless its body is not a
JSON object at all; kinds the bot does not use are stored as ignored and answered 200. The
body's ``object_kind`` decides the kind; ``X-Gitlab-Event`` is only a fallback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from aiohttp import web

from bot.config.webhooks import WebhookSettings
from bot.crash import crash_point
from bot.services.ci.events import event_kind, project_path
from bot.store.inbox import Delivery

log = structlog.get_logger(__name__)
MAX_BODY = 20 * 1024 * 1024  # GitLab's own payloads stay far below this
MAX_KEY = 200


class DeliveryStore(Protocol):
    async def put(self, delivery: Delivery) -> bool: ...


def delivery_key(headers: Any, body: bytes) -> str:
    """Idempotency-Key or ``webhook-id`` (the same on every retry and Resend), else what tells
    deliveries apart: the event UUID (shared by recursive hooks), the hook's UUID, the event
    name and the body's hash."""
    for name in ("Idempotency-Key", "webhook-id"):
        value = str(headers.get(name, "")).strip()
        if value:
            return value if len(value) <= MAX_KEY else "sha256:" + _sha256(value.encode())
    parts = [
        str(headers.get(name, "")).strip()
        for name in ("X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID", "X-Gitlab-Event")
    ]
    return "sha256:" + _sha256("\n".join([*parts, _sha256(body)]).encode())


def signing_key(token: str) -> bytes:
    """Standard Webhooks keys are ``whsec_`` + base64; any other token is used as it is."""
    if token.startswith("whsec_"):
        try:
            return base64.b64decode(token[len("whsec_") :], validate=True)
        except binascii.Error:
            pass
    return token.encode()


def signature_valid(token: str, headers: Any, body: bytes, now: float, tolerance: float) -> bool:
    """GitLab's signed deliveries, as Standard Webhooks defines them: HMAC-SHA256 over
    ``<webhook-id>.<webhook-timestamp>.<body>``, sent as space-separated ``v1,<base64>``."""
    delivery = str(headers.get("webhook-id", ""))
    stamp = str(headers.get("webhook-timestamp", ""))
    given = str(headers.get("webhook-signature", ""))
    if not delivery or not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return False
    if abs(now - int(stamp)) > tolerance:
        return False
    signed = delivery.encode() + b"." + stamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(signing_key(token), signed, hashlib.sha256).digest())
    candidates = [part.partition(",") for part in given.split()]
    matches = [hmac.compare_digest(sig.encode(), expected) for v, _, sig in candidates if v == "v1"]
    return any(matches)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def token_matches(given: str, secret: str) -> bool:
    return hmac.compare_digest(given.encode(), secret.encode())


class WebhookIntake:
    def __init__(
        self,
        settings: WebhookSettings,
        inbox: DeliveryStore,
        wake: Callable[[], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.inbox = inbox
        self.wake = wake
        self.clock = clock

    async def handle(self, request: web.Request) -> web.Response:
        token = request.headers.get("X-Gitlab-Token", "")
        if not self._any_secret_matches(token):
            return self._refused(None, token, configured=self._any_secret())
        raw = await _read_body(request)
        if raw is None:
            log.warning("webhook_too_large", limit=MAX_BODY)
            return web.Response(status=413, text="payload too large\n")
        signing = self.settings.signing_token
        if signing is not None and not signature_valid(
            signing.get_secret_value(),
            request.headers,
            raw,
            self.clock(),
            self.settings.signature_tolerance_seconds,
        ):
            log.warning("webhook_refused", reason="bad or stale signature")
            return web.Response(status=401, text="invalid webhook-signature\n")
        text, body, problem = _json_object(raw)
        if body is None:
            log.warning("webhook_malformed", reason=problem)
            return web.Response(status=400, text=f"malformed JSON payload: {problem}\n")
        project = project_path(body)
        secret = self.settings.secret_for(project)
        if secret is None or not token_matches(token, secret.get_secret_value()):
            return self._refused(project, token, configured=secret is not None)
        return await self._store(request, raw, text, body, project)

    async def _store(
        self,
        request: web.Request,
        raw: bytes,
        text: str,
        body: dict[str, Any],
        project: str | None,
    ) -> web.Response:
        header = request.headers.get("X-Gitlab-Event")
        kind = event_kind(None if body.get("object_kind") else header, body)
        key = delivery_key(request.headers, raw)
        named = str(kind) if kind else str(header or body.get("object_kind") or "unknown")
        where = project[:255] if project else None
        delivery = Delivery(key, named[:64], where, text, ignored=kind is None)
        try:
            new = await self.inbox.put(delivery)
        except Exception as err:
            log.error("webhook_not_stored", key=key, error=type(err).__name__)
            return web.Response(status=503, text="could not store the delivery; retry\n")
        crash_point("webhook.recorded", key)
        if new and kind is not None:
            self.wake()
        outcome = "ignored" if kind is None else "stored" if new else "duplicate"
        log.debug("webhook_received", key=key, kind=named, project=project, outcome=outcome)
        return web.Response(text=f"{outcome}\n")

    def _any_secret(self) -> bool:
        return self.settings.secret is not None or bool(self.settings.project_secrets)

    def _any_secret_matches(self, token: str) -> bool:
        """Before the body is read: does the token match any configured secret? Every secret
        is compared, so the time taken does not say which one came close."""
        secrets = [self.settings.secret, *self.settings.project_secrets.values()]
        results = [token_matches(token, s.get_secret_value()) for s in secrets if s is not None]
        return any(results)

    def _refused(self, project: str | None, token: str, *, configured: bool = True) -> web.Response:
        reason = "missing token" if not token else "wrong token"
        if not configured:
            reason = "no webhook secret configured"
        log.warning("webhook_refused", project=project, reason=reason)
        return web.Response(status=401, text="invalid X-Gitlab-Token\n")


async def _read_body(request: web.Request) -> bytes | None:
    """The whole body, read past aiohttp's client_max_size (a 413 would disable the hook)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(raw: bytes) -> tuple[str, dict[str, Any] | None, str]:
    """The body as text and as a JSON object, or why it is not one."""
    try:
        text = raw.decode("utf-8")
        body = json.loads(text)
    except UnicodeDecodeError:
        return "", None, "the body is not UTF-8"
    except RecursionError:
        return "", None, "the JSON is nested too deeply"
    except ValueError as err:
        return "", None, str(err)
    if not isinstance(body, dict):
        return text, None, f"expected a JSON object, got {type(body).__name__}"
    return text, body, ""


def routes(intake: WebhookIntake) -> list[web.RouteDef]:
    return [web.post("/gitlab/webhook", intake.handle)]
