"""The pieces bot/app.py puts together: adapters for the configured backends and the
services of each feature. Only bot/app.py and this module name concrete classes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.config.settings import Settings
from bot.config.training import resync_seconds
from bot.logs import SecretScrubber
from bot.metrics import Metrics
from bot.notifier import Notifier
from bot.ports import Cluster, ObjectStore, Pipelines, RepoFiles
from bot.services.ab.approvals import AbApprovals
from bot.services.ab.cards import AbCards
from bot.services.ab.commands import AbExperiments
from bot.services.ab.guard import AbGuard
from bot.services.ab.traffic import AbTraffic
from bot.services.access import Access
from bot.services.cards import Cards
from bot.services.ci.accuracy import PipelineAccuracy
from bot.services.ci.results import CiResults
from bot.services.deploys.approvals import Approvals
from bot.services.deploys.cards import DeployCards
from bot.services.deploys.configs import DeployConfigs
from bot.services.deploys.requests import DeployReports, Deploys
from bot.services.deploys.runner import DeployRunner
from bot.services.monitoring.digest import Digests
from bot.services.monitoring.incidents import Incidents
from bot.services.monitoring.monitor import Monitor
from bot.services.monitoring.ports import FileShares
from bot.services.training.followers import JobWatchers, PipelinePoller
from bot.services.training.progress import RunProgress
from bot.store import Store
from bot.store.ci_states import CiStates
from bot.worker import Worker
from handlers import webhooks
from integrations.aws.alb import AlbTraffic, CloudWatchMetrics
from integrations.aws.ecs import EcrRegistry, EcsServices
from integrations.aws.predictions import PredictionLogs
from integrations.aws.s3 import AwsClients, S3Objects
from integrations.ecspresso import Ecspresso, ecspresso_aws_env
from integrations.gitlab import GitLabPipelines
from integrations.slack import build_web_client


def slack_client(settings: Settings, metrics: Metrics) -> AsyncWebClient:
    token = settings.slack.bot_token.get_secret_value() if settings.slack.bot_token else ""
    return build_web_client(
        token,
        base_url=settings.slack.api_url,
        timeout=settings.slack.timeout_seconds,
        metrics=metrics,
    )


@dataclass(frozen=True)
class Backends:
    pipelines: Pipelines | None
    cluster: Cluster | None
    objects: ObjectStore | None
    files: RepoFiles | None = None
    aws: AwsClients = field(
        default_factory=lambda: AwsClients(region="us-east-1", endpoint_url=None, timeout=10.0)
    )

    async def close(self) -> None:
        """Close what holds connections (the Kubernetes client's session)."""
        close = getattr(self.cluster, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


AWS_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def aws_env(settings: Settings) -> dict[str, str]:
    """What ecspresso gets to reach AWS as the bot does."""
    return ecspresso_aws_env(os.environ, settings.aws.region, settings.aws.endpoint_url)


@dataclass(frozen=True)
class DeployParts:
    deploys: Deploys
    reports: DeployReports
    approvals: Approvals
    runner: DeployRunner
    aws: AwsClients


def build_deploys(
    settings: Settings, store: Store, access: Access, cards: Cards, backends: Backends
) -> DeployParts:
    """ECR, ECS and ecspresso behind the deploy services (boto3 clients connect lazily)."""
    client = backends.aws.client
    ecr = client("ecr")
    services = EcsServices(client("ecs"), ecr)
    deployer = Ecspresso(
        settings.ecspresso.path,
        base_env=aws_env(settings),
        deploy_timeout=settings.ecspresso.timeout_seconds,
    )
    deploy_cards = DeployCards(settings, store, cards)
    runner = DeployRunner(
        settings,
        store,
        deploy_cards,
        deployer,
        services,
        DeployConfigs(settings, backends.files),
        aws_env={},
    )
    handed = aws_env(settings)  # what ecspresso gets: a diff shown in Slack must not carry it
    scrubber = SecretScrubber([*settings.secrets(), *(handed.get(k, "") for k in AWS_SECRETS)])
    deploys = Deploys(
        settings, store, access, deploy_cards, EcrRegistry(ecr), runner, scrubber=scrubber
    )
    approvals = Approvals(settings, store, access, deploy_cards, runner)
    reports = DeployReports(settings, store, access, services)
    return DeployParts(deploys, reports, approvals, runner, backends.aws)


@dataclass(frozen=True)
class AbParts:
    experiments: AbExperiments
    guard: AbGuard | None  # None when no environment declares `ab:`


def build_ab(
    settings: Settings, store: Store, access: Access, cards: Cards, parts: DeployParts
) -> AbParts:
    """ELBv2 weights and CloudWatch behind the A/B services; /deploy status shows the split."""
    client = parts.aws.client
    ab_cards = AbCards(settings, store, cards)
    weights = AbTraffic(settings, store, ab_cards, AlbTraffic(client("elbv2")))
    approvals = AbApprovals(settings, store, access, weights)
    experiments = AbExperiments(
        settings, store, access, parts.deploys, weights, approvals, parts.reports.services
    )
    parts.reports.splits = experiments
    declared = any(e.ab for m in settings.models.values() for e in m.environments.values())
    metrics = CloudWatchMetrics(client("cloudwatch"))
    guard = AbGuard(settings, store, experiments, metrics) if declared else None
    return AbParts(experiments, guard)


def monitoring_loops(
    settings: Settings, store: Store, cards: Cards, aws: AwsClients, files: FileShares
) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    """The monitoring loop (CloudWatch and S3 behind it; Slack files for the daily digest),
    when a model has `monitoring`."""
    if not any(m.monitoring for m in settings.models.values()):
        return []
    metrics = CloudWatchMetrics(aws.client("cloudwatch"))
    scans = PredictionLogs(aws.client("s3"))
    incidents = Incidents(settings, store, cards)
    digests = Digests(settings, store, files)
    monitor = Monitor(settings, store, incidents, metrics, scans, digests=digests)
    return [("monitoring", monitor.run)]


def uses(settings: Settings, backend: str) -> bool:
    return any(m.training.backend == backend for m in settings.models.values())


async def build_backends(settings: Settings) -> Backends:
    """The adapters the configured models need; each builds its client without network I/O."""
    gitlab = settings.gitlab
    pipelines = None
    if uses(settings, "gitlab") and (gitlab.token or gitlab.trigger_tokens):
        pipelines = GitLabPipelines.from_settings(
            url=gitlab.url,
            token=gitlab.token.get_secret_value() if gitlab.token else None,
            timeout=gitlab.timeout_seconds,
            trigger_tokens={k: v.get_secret_value() for k, v in gitlab.trigger_tokens.items()},
        )
    cluster = None
    if uses(settings, "kubernetes"):
        # imported here: the Kubernetes client's models take seconds and tens of MB to load,
        # and a bot whose models train on GitLab never needs them
        from integrations.kubernetes.cluster import KubernetesCluster

        cluster = await KubernetesCluster.from_kubeconfig(
            settings.kubernetes.kubeconfig,
            request_timeout=settings.kubernetes.timeout_seconds,
            resync_seconds=resync_seconds(m.training.kubernetes for m in settings.models.values()),
        )
    aws = AwsClients(
        region=settings.aws.region,
        endpoint_url=settings.aws.endpoint_url,
        timeout=settings.aws.timeout_seconds,
    )
    objects = None
    if any(m.training.kubernetes.metrics_bucket for m in settings.models.values()):
        objects = S3Objects(aws.client("s3"))
    files = pipelines if isinstance(pipelines, GitLabPipelines) else None
    configs_in_gitlab = any(
        m.deploy.source.kind == "gitlab" or m.gitlab_project for m in settings.models.values()
    )
    if files is None and configs_in_gitlab and gitlab.token:
        # deploy configs, and the commits Kubernetes runs train, of models with a project
        files = GitLabPipelines.from_settings(
            url=gitlab.url, token=gitlab.token.get_secret_value(), timeout=gitlab.timeout_seconds
        )
    return Backends(pipelines, cluster, objects, files, aws)


def followers(
    settings: Settings, store: Store, backends: Backends, progress: RunProgress
) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    """The background loops that follow active runs: one GitLab poller, one watch per
    namespace. With webhooks configured the poller only backs them up, slowly."""
    loops: list[tuple[str, Callable[[], Awaitable[None]]]] = []
    if backends.pipelines is not None:
        training = settings.training
        every = training.webhook_poll_seconds if settings.webhooks.secret else training.poll_seconds
        poller = PipelinePoller(
            store,
            backends.pipelines,
            progress,
            every=every,
            max_every=max(every, training.poll_max_seconds),
        )
        loops.append(("gitlab-poller", poller.run))
    if backends.cluster is not None:
        namespaces = sorted(
            {
                m.training.kubernetes.namespace
                for m in settings.models.values()
                if m.training.backend == "kubernetes"
            }
        )
        watchers = JobWatchers(backends.cluster, progress, namespaces)
        loops += [
            (f"watch-{ns}", loop) for ns, loop in zip(namespaces, watchers.loops(), strict=True)
        ]
    return loops


def build_ci(
    settings: Settings,
    store: Store,
    notifier: Notifier,
    pipelines: Pipelines | None,
    progress: RunProgress,
    metrics: Metrics,
) -> tuple[Worker, list[web.RouteDef]]:
    """GitLab webhook intake (/gitlab/webhook) and the worker that posts CI results after the
    200; pipelines of /train runs go to their run's card instead."""
    hooks = settings.webhooks
    cards = Cards(store, notifier)  # the outbox's writes yield to webhook acks (write gate)
    states = CiStates(store.db)
    accuracy = PipelineAccuracy(settings, pipelines, progress) if pipelines else None
    logs = pipelines if isinstance(pipelines, GitLabPipelines) else None
    results = CiResults(
        hooks, cards, notifier, states, training=progress, logs=logs, accuracy=accuracy
    )
    retention = timedelta(hours=hooks.retention_hours)
    worker = Worker(
        store.inbox, results, settle=notifier.flush, retention=retention, metrics=metrics
    )
    intake = webhooks.WebhookIntake(hooks, store.inbox, worker.wake)
    return worker, webhooks.routes(intake)


def build_bolt(settings: Settings, client: AsyncWebClient) -> AsyncApp:
    secret = settings.slack.signing_secret
    return AsyncApp(
        # named, or bolt names itself from inspect.stack(): ~0.2 s of start-up spent resolving
        # the source file of every frame
        name="mlops-bot",
        client=client,
        signing_secret=secret.get_secret_value() if secret else None,
        request_verification_enabled=not settings.slack.socket_mode,
        # The edge has acked already (handlers/slack_edge.py); bolt runs each recorded
        # interaction's listener to the end, so the processor knows when it is done.
        process_before_response=True,
        logger=None,
    )
