"""Composition root: settings -> store -> integrations -> services -> AsyncApp and web app.

The only module that imports everything; nothing is built at import time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.config.settings import Settings
from bot.inflight import InFlight
from bot.leadership import LeaderElector, Timing, replica_id
from bot.logs import SecretScrubber
from bot.loop_lag import LoopLag
from bot.metrics import Metrics
from bot.notifier import Notifier
from bot.reconciler import Reconciler
from bot.server import build_web_app
from bot.services.ab.guard import AbGuard
from bot.services.access import Access
from bot.services.cards import Cards
from bot.services.deploys.adoption import Adoption
from bot.services.deploys.locks import Locks
from bot.services.deploys.ownership import Ownership
from bot.services.deploys.runner import DeployRunner
from bot.services.training.commands import Training
from bot.services.training.followers import Supervisor
from bot.services.training.progress import RunProgress
from bot.store import Store
from bot.store.deployments import RunnerLease
from bot.wiring import (
    Backends,
    build_ab,
    build_backends,
    build_bolt,
    build_ci,
    build_deploys,
    followers,
    monitoring_loops,
    slack_client,
)
from bot.worker import Worker
from handlers import actions, commands, middleware, reactions
from handlers.deps import Deps
from handlers.interactions import InteractionProcessor
from handlers.slack_edge import SlackEdge
from handlers.slack_requests import vocabulary
from integrations.slack import SlackCards, SlackDirectory
from integrations.slack_files import SlackFiles

log = structlog.get_logger(__name__)
SHUTDOWN_GRACE_SECONDS = 10.0
# Loops that every replica runs (their claims make that safe); the leader runs the others.
EVERY_REPLICA = frozenset({"slack-outbox"})


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
    followers: list[tuple[str, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    supervisor: Supervisor = field(default_factory=Supervisor)  # the leader's loops
    everywhere: Supervisor = field(default_factory=Supervisor)  # loops of every replica
    backends: Backends | None = None
    deploy_runner: DeployRunner | None = None
    worker: Worker | None = None
    ab_guard: AbGuard | None = None
    interactions: InteractionProcessor | None = None
    edge: SlackEdge | None = None
    lag: LoopLag | None = None  # the event-loop heartbeat (mlops_bot_event_loop_lag_*)
    elector: LeaderElector | None = None  # runs the singleton loops while this replica leads
    replica: str = field(default_factory=replica_id)  # holds the leader and deploy leases


async def build(settings: Settings, scrubber: SecretScrubber | None = None) -> Bot:
    """Wire every piece; no network I/O (the store connects lazily, Slack on first request;
    only reading a kubeconfig file happens here)."""
    metrics = Metrics()
    store = Store.from_url(settings.store_url, timeout=settings.store.timeout_seconds)
    client = slack_client(settings, metrics)
    interval = settings.notifier.edit_interval_seconds
    outbox = Reconciler(store.cards, SlackCards(client), interval=interval)
    notifier = Notifier(client, edit_interval=interval, metrics=metrics, outbox=outbox)
    directory = SlackDirectory(client, ttl=settings.policy.group_cache_seconds)
    access = Access(settings, directory)
    cards = Cards(store, notifier)
    locks = Locks(settings, store, access, cards)
    backends = await build_backends(settings)
    progress = RunProgress(
        settings, store, cards, backends.pipelines, backends.cluster, backends.objects
    )
    training = Training(
        settings,
        store,
        access,
        progress,
        backends.pipelines,
        backends.cluster,
        files=backends.files,
    )
    parts = build_deploys(settings, store, access, cards, backends)
    ab = build_ab(settings, store, access, cards, parts)
    deps = Deps(
        settings=settings,
        store=store,
        chat=notifier,
        metrics=metrics,
        scrubber=scrubber or SecretScrubber(settings.secrets()),
        access=access,
        locks=locks,
        training=training,
        deploys=parts.deploys,
        reports=parts.reports,
        approvals=parts.approvals,
        inflight=InFlight(),
        ab=ab.experiments,
    )
    bolt = build_bolt(settings, client)
    middleware.register(bolt)
    commands.register(bolt, deps)
    actions.register(bolt, deps)
    reactions.register(bolt, deps)
    claim_lease = settings.store.claim_lease_seconds
    processor = InteractionProcessor(store.interactions, bolt, metrics, claim_lease=claim_lease)
    secret = settings.slack.signing_secret
    edge = SlackEdge(
        store.interactions,
        vocabulary(),
        metrics,
        processor.wake,
        signing_secret=secret.get_secret_value() if secret else None,
    )
    processor.yield_to = edge.busy  # acks first: listeners start 10 a second while Slack waits
    worker, ci_routes = build_ci(settings, store, notifier, backends.pipelines, progress, metrics)
    worker.claim_lease = claim_lease
    slack_route = None if settings.slack.socket_mode else edge.http
    web_app = build_web_app(slack_route, store, metrics, extra=ci_routes)
    bot = Bot(settings, store, metrics, client, notifier, bolt, web_app, deps, worker=worker)
    bot.interactions, bot.edge = processor, edge
    bot.followers = followers(settings, store, backends, progress)
    bot.followers.append(("approval-expiry", parts.approvals.expiry_loop))
    bot.followers.append(("slack-outbox", outbox.run))
    bot.followers.append(("run-resume", training.launcher.run))
    if ab.guard is not None:
        bot.followers.append(("ab-guard", ab.guard.run))
        bot.ab_guard = ab.guard
    bot.followers += monitoring_loops(settings, store, cards, parts.aws, SlackFiles(client))
    bot.backends = backends
    bot.deploy_runner = parts.runner
    parts.runner.own = deploy_ownership(bot)
    every = settings.store.leader_renew_seconds
    bot.followers.append(("deploy-adopt", Adoption(parts.runner, every).run))
    return bot


def deploy_ownership(bot: Bot) -> Ownership:
    """This replica's leases on the deploys it runs, as long and as often renewed as the
    leader's."""
    settings = bot.settings.store
    lease = RunnerLease(bot.replica, settings.leader_lease_seconds)
    lone = bot.store.db.engine.dialect.name == "sqlite"
    return Ownership(bot.store.deployments, lease, settings.leader_renew_seconds, lone=lone)


async def start(bot: Bot, *, host: str | None = None, port: int | None = None) -> str:
    """Check the store, then serve HTTP (and connect Socket Mode when configured)."""
    await bot.store.ensure_current()
    bot.lag = bot.lag or bot.metrics.lag_monitor()
    bot.lag.start()
    if bot.store.db.engine.dialect.name == "sqlite":
        # one replica: claims left in the store are a dead predecessor's, run them now
        await bot.store.inbox.release_claims()
        await bot.store.interactions.release_claims()
        await bot.store.deployments.hand_back(None)  # and so are the deploys' leases
    if bot.deploy_runner is not None and bot.deploy_runner.own is not None:
        bot.deploy_runner.own.start()
    if bot.worker is not None:
        bot.worker.start()
    if bot.interactions is not None:
        bot.interactions.start()
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
    for name, loop in bot.followers:
        if name in EVERY_REPLICA:
            bot.everywhere.start(name, loop)
    bot.elector = bot.elector or leader_elector(bot)
    await bot.elector.start()
    if bot.settings.slack.socket_mode:
        await connect_socket_mode(bot)
    log.info("bot_started", url=bot.url, socket_mode=bot.settings.slack.socket_mode)
    return bot.url


def leader_elector(bot: Bot) -> LeaderElector:
    """The singleton loops and the deploys' resumption, run by whichever replica leads."""
    settings = bot.settings.store
    timing = Timing(lease=settings.leader_lease_seconds, renew=settings.leader_renew_seconds)
    singletons = [(name, loop) for name, loop in bot.followers if name not in EVERY_REPLICA]
    runner = bot.deploy_runner
    return LeaderElector(
        bot.store.leases,
        singletons,
        timing,
        holder=bot.replica,
        on_lead=runner.reap if runner is not None else None,
        # SQLite serves one replica: a starting bot replaces whatever held the lease before
        takeover=bot.store.db.engine.dialect.name == "sqlite",
        supervisor=bot.supervisor,
    )


async def connect_socket_mode(bot: Bot) -> None:
    """Socket Mode through the same edge: record, then ack the envelope."""
    from slack_sdk.socket_mode.aiohttp import SocketModeClient
    from slack_sdk.socket_mode.request import SocketModeRequest
    from slack_sdk.socket_mode.response import SocketModeResponse

    app_token = bot.settings.slack.app_token
    edge = bot.edge
    assert app_token is not None and edge is not None

    async def on_request(client: SocketModeClient, req: SocketModeRequest) -> None:
        answer = await edge.socket(req.type, req.payload)
        body = answer.body if answer.status == 200 else None
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=req.envelope_id, payload=body)
        )

    client = SocketModeClient(app_token=app_token.get_secret_value(), web_client=bot.client)
    client.socket_mode_request_listeners.append(on_request)  # type: ignore[arg-type]
    await client.connect()  # type: ignore[no-untyped-call]
    bot.socket_handler = client


async def stop(bot: Bot) -> None:
    """Close in reverse order; each step runs even if an earlier one failed."""
    if bot.elector is not None:
        await bot.elector.stop_trying()  # leads on (or not) until the deploys have drained
    await bot.supervisor.stop()
    await bot.everywhere.stop()
    if bot.deploy_runner is not None:
        await bot.deploy_runner.drain(grace=SHUTDOWN_GRACE_SECONDS)
    if bot.elector is not None:
        # only now: the next leader resumes this replica's deploys once they have let go
        await bot.elector.stop()
    if bot.socket_handler is not None:
        with contextlib.suppress(Exception):
            await bot.socket_handler.close()
    if bot.runner is not None:
        await bot.runner.cleanup()
    if bot.interactions is not None:
        left = await bot.interactions.stop(grace=SHUTDOWN_GRACE_SECONDS)
        if left:
            log.warning("interactions_left_pending", count=left)
    if bot.worker is not None:
        await bot.worker.stop(grace=SHUTDOWN_GRACE_SECONDS)
    late = await bot.deps.inflight.drain(grace=SHUTDOWN_GRACE_SECONDS)
    if late:
        log.warning("shutdown_cancelled_work", tasks=late)
    with contextlib.suppress(Exception):
        await bot.notifier.close()
    if bot.backends is not None:
        await bot.backends.close()
    await bot.store.close()
    if bot.lag is not None:
        await bot.lag.stop()
