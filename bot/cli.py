"""`mlops-bot serve | sandbox | check-config | migrate | audit | inbox`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from bot import crash
from bot.audit_cli import print_audit
from bot.config.loading import CONFIG_ENV, load_settings
from bot.config.settings import Settings
from bot.errors import BotError, ConfigError, UserInputError
from bot.inbox_cli import print_inbox, retry_delivery
from bot.logs import configure_logging
from bot.store import faults

CONFIG_HELP = "YAML config file (default: $MLOPS_BOT_CONFIG)"

if TYPE_CHECKING:
    from integrations.ecspresso import Ecspresso


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mlops-bot", description=__doc__)
    root.add_argument("--config", help=CONFIG_HELP)
    # --config after the subcommand too; SUPPRESS keeps an absent one from hiding the root's
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    sub = root.add_subparsers(dest="command")
    sub.add_parser(
        "serve",
        parents=[config],
        help="run the bot (the sandbox when no Slack workspace is configured)",
    )
    sandbox = sub.add_parser(
        "sandbox", parents=[config], help="run the bot against local stand-ins with a console"
    )
    sandbox.add_argument("--script", type=Path, help="run console lines from FILE and exit")
    sandbox.add_argument(
        "--wait-seconds",
        type=float,
        default=30.0,
        help="how long `wait until TEXT` waits before the line fails (default 30)",
    )
    sub.add_parser("check-config", parents=[config], help="validate the configuration and exit")
    sub.add_parser("migrate", parents=[config], help="apply pending store schema migrations")
    inbox = sub.add_parser(
        "inbox", parents=[config], help="list webhook deliveries, or retry a failed one"
    )
    inbox.add_argument("action", nargs="?", choices=["list", "retry"], default="list")
    inbox.add_argument("key", nargs="?", help="with retry: the delivery key to process again")
    inbox.add_argument("--failed", action="store_true", help="only deliveries that failed")
    audit = sub.add_parser("audit", parents=[config], help="print the audit log")
    audit.add_argument("--model", help="only this model")
    audit.add_argument("--since", help="ISO time or age like 30m, 12h, 7d")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    return root


def settings_or_exit(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{len(exc.issues)} problem(s) in the configuration", file=sys.stderr)
        raise SystemExit(1) from None


def check_config(config: str | None) -> int:
    settings = settings_or_exit(config)
    models = ", ".join(sorted(settings.models)) or "none"
    mode = (
        ("Socket Mode" if settings.slack.socket_mode else "HTTP")
        if settings.slack.configured
        else "no Slack workspace (serve starts the sandbox)"
    )
    tools = asyncio.run(check_backends(settings)) + check_job_templates(settings)
    tools += asyncio.run(check_ecspresso(settings))
    tools += asyncio.run(check_gitlab_variables(settings))
    for problem in tools:
        print(problem, file=sys.stderr)
    if tools:
        return 1
    print(f"configuration is valid: models {models}; Slack: {mode}")
    return 0


async def check_backends(settings: Settings) -> list[str]:
    """What `serve` would refuse while building its adapters (a kubeconfig that is missing or
    unreadable, no in-cluster credentials), found the same way."""
    from bot.wiring import build_backends

    try:
        backends = await build_backends(settings)
    except ConfigError as exc:
        return list(exc.issues)
    await backends.close()
    return []


async def check_gitlab_variables(settings: Settings) -> list[str]:
    """Each GitLab model's project would take /train's MLOPS_* and HP_* pipeline variables."""
    from integrations.gitlab_checks import variables_issues

    return await variables_issues(settings)


def check_job_templates(settings: Settings) -> list[str]:
    """Each Kubernetes model's Job template against the Job schema, mistakes by line."""
    from integrations.kubernetes.templates import TemplateError, load

    problems: list[str] = []
    for model, m in sorted(settings.models.items()):
        path = m.training.kubernetes.template
        if m.training.backend != "kubernetes" or path is None:
            continue
        try:
            load(path)
        except TemplateError as exc:
            where = f"models.{model}.training.kubernetes.template"
            problems += [f"{where}: {problem}" for problem in exc.problems]
    return problems


def deploys_configured(settings: Settings) -> bool:
    return any(
        m.deploy.image_repository or any(e.cluster for e in m.environments.values())
        for m in settings.models.values()
    )


def checking_ecspresso(settings: Settings) -> Ecspresso:
    """The adapter as the bot builds it (same AWS environment), with a short timeout."""
    from integrations.ecspresso import Ecspresso, ecspresso_aws_env

    env = ecspresso_aws_env(os.environ, settings.aws.region, settings.aws.endpoint_url)
    return Ecspresso(settings.ecspresso.path, base_env=env, timeout=15.0)


async def check_ecspresso_version(settings: Settings) -> list[str]:
    """The ecspresso executable runs and is in the supported range (older ones exit 0 after
    a circuit-breaker rollback; v3 is unchecked), when any model deploys."""
    if not deploys_configured(settings):
        return []
    try:
        await checking_ecspresso(settings).check_version(settings.ecspresso.min_version)
    except ConfigError as exc:
        return [f"ecspresso.path: {issue}" for issue in exc.issues]
    return []


async def check_ecspresso(settings: Settings) -> list[str]:
    """The version, then each local deploy config as ecspresso renders it."""
    problems = await check_ecspresso_version(settings)
    if problems or not deploys_configured(settings):
        return problems
    ecspresso = checking_ecspresso(settings)
    for model, m in sorted(settings.models.items()):
        for env in sorted(m.environments):
            problems += await check_deploy_config(settings, ecspresso, model, env)
    return problems


async def check_deploy_config(
    settings: Settings, ecspresso: Ecspresso, model: str, env: str
) -> list[str]:
    """``ecspresso render config`` of a local config: it must deploy the cluster and service
    the bot verifies, and enable the ``external`` plugin only when allowed."""
    from integrations.ecspresso import rendered_target

    m, e = settings.models[model], settings.models[model].environments[env]
    where = f"models.{model}.environments.{env}"
    if m.deploy.source.kind != "local":
        return []
    path = Path(m.deploy.source.path.format(model=model, env=env)) / m.deploy.source.config
    if not path.is_file():
        print(f"note: {where}: no ecspresso config at {path} (not checked)")
        return []
    names = {"ECS_CLUSTER": e.cluster, "ECS_SERVICE": e.service}
    variables = {k: v for k, v in names.items() if v} | dict(e.variables)
    try:
        target = rendered_target(await ecspresso.render_config(str(path), variables))
    except BotError as exc:
        return [f"{where}: ecspresso render config failed: {exc}"]
    problems = [
        f"{where}.{key}: the ecspresso config {path} deploys {key} {found!r}, not {wanted!r}"
        for key, wanted, found in (
            ("cluster", e.cluster, target.cluster),
            ("service", e.service, target.service),
        )
        if wanted and found != wanted
    ]
    if "external" in target.plugins and not settings.ecspresso.allow_external_plugin:
        problems.append(
            f"{where}: the ecspresso config {path} enables the external plugin (it runs "
            "commands); set ecspresso.allow_external_plugin: true to allow it"
        )
    return problems


async def migrate(settings: Settings) -> int:
    from bot.store import Store

    store = Store.from_url(settings.store_url, timeout=settings.store.timeout_seconds)
    try:
        before, after = await store.migrate()
    finally:
        await store.close()
    print(f"store schema at version {after} (was {before})")
    return 0


def loaded() -> None:
    """What exists now lives as long as the process (`bot.entry` held the collector off while
    it loaded): it stays out of every later collection, which resumes. Full passes over it
    would stall the event loop, and every ack, for hundreds of ms. Only the process's own
    entry calls this, never `bot.app`: a process that starts bot after bot (a test session)
    would keep each earlier bot's garbage for good."""
    gc.freeze()
    gc.enable()


async def serve(settings: Settings) -> int:
    # the app's modules load (a thread) while `ecspresso version` runs (a process): one wait
    loading = asyncio.to_thread(importlib.import_module, "bot.app")
    refused, _ = await asyncio.gather(check_ecspresso_version(settings), loading)
    from bot import app as bot_app  # loaded now: typed access

    if refused:
        print(f"mlops-bot: not starting: {refused[0]}", file=sys.stderr)
        return 1
    bot = await bot_app.build(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)
    try:
        await bot_app.start(bot)
        loaded()  # the modules, and what build and start made: the server, loops, clients
        print(f"mlops-bot serving at {bot.url}", file=sys.stderr)
        await stopping.wait()
    finally:
        await bot_app.stop(bot)
    return 0


SANDBOX_LOG = Path(".mlops-bot") / "sandbox.log"


async def sandbox(config: str | None, script: Path | None, wait_seconds: float = 30.0) -> int:
    """The console shows only the conversation; the bot's own log lines go to a file."""
    from bot.sandbox.runner import run

    SANDBOX_LOG.parent.mkdir(parents=True, exist_ok=True)
    with SANDBOX_LOG.open("a", encoding="utf-8", buffering=1) as log_file:
        configure_logging("info", stream=log_file)
        print(f"(the bot's logs go to {SANDBOX_LOG})", file=sys.stderr)
        return await run(
            Path(config) if config else None, script, sys.stdout, wait_seconds=wait_seconds
        )


async def inbox(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "retry":
        if not args.key:
            raise UserInputError(
                "usage: mlops-bot inbox retry KEY (see `mlops-bot inbox --failed`)"
            )
        return await retry_delivery(settings, args.key)
    return await print_inbox(settings, failed=args.failed)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # MLOPS_BOT_CONFIG everywhere, the sandbox included, unless --config names a file
    args.config = args.config or os.environ.get(CONFIG_ENV) or None
    command = args.command or "serve"
    if command != "serve":
        loaded()  # serve loads the app first
    if command == "check-config":
        return check_config(args.config)
    try:
        crash.arm(os.environ)  # the crash harness's points; unset outside its tests
        return asyncio.run(dispatch(command, args))
    except BotError as exc:
        print(f"mlops-bot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def dispatch(command: str, args: argparse.Namespace) -> int:
    if command == "sandbox":
        return await sandbox(args.config, args.script, args.wait_seconds)
    settings = settings_or_exit(args.config)
    configure_logging(settings.log_level, secrets=settings.secrets())
    try:
        return await run_command(command, args, settings)
    except (SQLAlchemyError, OSError) as err:
        print(f"mlops-bot: {faults.describe(settings.store_url, err)}", file=sys.stderr)
        return 1


async def run_command(command: str, args: argparse.Namespace, settings: Settings) -> int:
    if command == "migrate":
        return await migrate(settings)
    if command == "audit":
        return await print_audit(settings, model=args.model, since=args.since, as_json=args.json)
    if command == "inbox":
        return await inbox(settings, args)
    if not settings.slack.configured:
        print("no Slack workspace configured: starting the local sandbox", file=sys.stderr)
        return await sandbox(args.config, None)
    return await serve(settings)
