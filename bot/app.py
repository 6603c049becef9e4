"""Composition root: settings -> store -> integrations -> services -> AsyncApp and web app.

The only module that imports everything; nothing is built at import time.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.inflight import InFlight
from bot.logs import SecretScrubber
from bot.metrics import Metrics
from bot.notifier import Notifier
from bot.server import build_web_app
from bot.services.access import Access
from bot.services.cards import Cards
from bot.services.locks import Locks
from bot.store import Store
from handlers import actions, commands, middleware, reactions
from handlers.deps import Deps
from integrations.slack import SlackDirectory, build_web_client

log = structlog.get_logger(__name__)
SHUTDOWN_GRACE_SECONDS = 10.0


@dataclass
class Bot:
    """Every long-lived piece of a running bot, so that tests and the CLI can reach them."""

    settings: Settings
    store: Store
    metrics: Metrics
    client: AsyncWebClient
    notifier: Notifier
    bolt: AsyncApp
    web_app: web.Application
    deps: Deps
    runner: web.AppRunner | None = None
    socket_handler: Any = None
    url: str = ""
    closers: list[Any] = field(default_factory=list)


def slack_client(settings: Settings, metrics: Metrics) -> AsyncWebClient:
    token = settings.slack.bot_token.get_secret_value() if settings.slack.bot_token else ""
    return build_web_client(
        token,
        base_url=settings.slack.api_url,
        timeout=settings.slack.timeout_seconds,
        metrics=metrics,
    )


def build_bolt(settings: Settings, client: AsyncWebClient) -> AsyncApp:
    secret = settings.slack.signing_secret
    return AsyncApp(
        client=client,
        signing_secret=secret.get_secret_value() if secret else None,
        request_verification_enabled=not settings.slack.socket_mode,
        # Listeners are ack + lazy: the ack runs inline (no polling) and the work runs after the
        # response, so acks never wait on work.
        process_before_response=True,
        logger=None,
    )


def build(settings: Settings, scrubber: SecretScrubber | None = None) -> Bot:
    """Wire every piece; does no I/O (the store connects lazily, Slack on first request)."""
    metrics = Metrics()
    store = Store.from_url(settings.store_url, timeout=settings.store.timeout_seconds)
    client = slack_client(settings, metrics)
    notifier = Notifier(
        client, edit_interval=settings.notifier.edit_interval_seconds, metrics=metrics
    )
    directory = SlackDirectory(client, ttl=settings.policy.group_cache_seconds)
    access = Access(settings, directory)
    locks = Locks(settings, store, access, Cards(store, notifier))
    deps = Deps(
        settings=settings,
        store=store,
        chat=notifier,
        metrics=metrics,
        scrubber=scrubber or SecretScrubber(settings.secrets()),
        access=access,
        locks=locks,
        inflight=InFlight(),
    )
    bolt = build_bolt(settings, client)
    middleware.register(bolt)
    commands.register(bolt, deps)
    actions.register(bolt, deps)
    reactions.register(bolt, deps)
    web_bolt = None if settings.slack.socket_mode else bolt
    web_app = build_web_app(web_bolt, store, metrics)
    return Bot(settings, store, metrics, client, notifier, bolt, web_app, deps)


async def start(bot: Bot, *, host: str | None = None, port: int | None = None) -> str:
    """Check the store, then serve HTTP (and connect Socket Mode when configured)."""
    await bot.store.ensure_current()
    bot.runner = web.AppRunner(bot.web_app, access_log=None)
    await bot.runner.setup()
    site = web.TCPSite(
        bot.runner,
        host or bot.settings.server.host,
        bot.settings.server.port if port is None else port,
    )
    await site.start()
    bound = bot.runner.addresses[0]
    bot.url = f"http://{bound[0]}:{bound[1]}"
    if bot.settings.slack.socket_mode:
        await connect_socket_mode(bot)
    log.info("bot_started", url=bot.url, socket_mode=bot.settings.slack.socket_mode)
    return bot.url


async def connect_socket_mode(bot: Bot) -> None:
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

    app_token = bot.settings.slack.app_token
    assert app_token is not None
    handler = AsyncSocketModeHandler(bot.bolt, app_token.get_secret_value())
    await handler.connect_async()  # type: ignore[no-untyped-call]
    bot.socket_handler = handler


async def stop(bot: Bot) -> None:
    """Close in reverse order; each step runs even if an earlier one failed."""
    if bot.socket_handler is not None:
        with contextlib.suppress(Exception):
            await bot.socket_handler.close_async()
    if bot.runner is not None:
        await bot.runner.cleanup()
    late = await bot.deps.inflight.drain(grace=SHUTDOWN_GRACE_SECONDS)
    if late:
        log.warning("shutdown_cancelled_work", tasks=late)
    with contextlib.suppress(Exception):
        await bot.notifier.close()
    await bot.store.close()
