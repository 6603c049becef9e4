"""A stand-in for the ecspresso CLI (v2) that makes the real ECS calls, against moto or AWS.

Run as ``python -m bot.sandbox.ecspresso.cli`` or through ``bot/sandbox/bin/ecspresso``.
It speaks the subcommands and flags the bot uses, with ecspresso's exit codes and output:
log lines on stderr (``2025/01/01 12:00:00 fraud-api/ml-stg Starting deploy``), diffs and JSON
on stdout, ``[ERROR] FAILED. ...`` and exit 1 on failure. AWS endpoint, region and credentials
come from the usual AWS_* variables.

Failure injection, per invocation, from MLOPS_ECSPRESSO_STANDIN_MODE (or the first line of
the file named by MLOPS_ECSPRESSO_STANDIN_CONTROL, which wins): ``;``-separated items
``mode`` or ``mode@cmd,cmd`` (``redeploy`` names ``deploy --skip-task-definition``).
Modes: ``fail`` (exit 1, ECS untouched), ``hang`` (never ends,
ignores SIGTERM, has a child; pids go to MLOPS_ECSPRESSO_STANDIN_PIDFILE), ``lie`` (prints
success, exits 0, changes nothing), ``old-version`` (``ecspresso v2.3.0``). Without ``@``,
``lie`` applies to deploy and rollback, ``old-version`` to version, the others to all but version.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from bot.sandbox.ecspresso import render as rendering
from bot.sandbox.ecspresso.ecs import Ecs, Failed, log, name_of
from bot.sandbox.ecspresso.render import Config, RenderError

VERSION = "v2.4.5"
INJECTED_FAILURE = (
    "failed to wait service stable: ECS deployment circuit breaker: tasks failed to start"
    " (injected by MLOPS_ECSPRESSO_STANDIN_MODE=fail)"
)
DEFAULT_SCOPE = {"lie": {"deploy", "rollback"}, "old-version": {"version"}}


def mode_for(command: str) -> str:
    """The injected failure mode for this subcommand, or ""."""
    spec = os.environ.get("MLOPS_ECSPRESSO_STANDIN_MODE", "")
    control = os.environ.get("MLOPS_ECSPRESSO_STANDIN_CONTROL")
    if control and os.path.exists(control):
        with open(control) as fh:
            spec = fh.readline().strip() or spec
    for item in filter(None, (i.strip() for i in spec.split(";"))):
        mode, _, commands = item.partition("@")
        scope = set(commands.split(",")) if commands else DEFAULT_SCOPE.get(mode)
        if (scope is None and command != "version") or (scope and command in scope):
            return mode
    return ""


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    top = argparse.ArgumentParser(prog="ecspresso", parents=[common])
    top.error = _usage_error  # type: ignore[method-assign]
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("version", parents=[common])
    deploy = sub.add_parser("deploy", parents=[common])
    deploy.add_argument("--skip-task-definition", action="store_true")
    deploy.add_argument("--revision", type=int, default=0)
    deploy.add_argument("--tasks", type=int, default=-1)
    for flag in ("wait", "update-service"):
        deploy.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=True)
    deploy.add_argument("--force-new-deployment", action="store_true")
    rollback = sub.add_parser("rollback", parents=[common])
    for flag in ("deregister-task-definition", "wait"):
        rollback.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=True)
    diff = sub.add_parser("diff", parents=[common])
    diff.add_argument("--unified", action=argparse.BooleanOptionalAction, default=True)
    revisions = sub.add_parser("revisions", parents=[common])
    revisions.add_argument("--output", choices=("table", "json", "tsv"), default="table")
    for p in (deploy, rollback, diff, revisions):
        p.add_argument("--dry-run", action="store_true")
        p.error = _usage_error  # type: ignore[method-assign]
    return top


def _usage_error(message: str) -> NoReturn:
    print(f"ecspresso: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def deploy(ecs: Ecs, args: argparse.Namespace, mode: str) -> None:
    cfg = ecs.config
    log("Starting deploy", cfg.name)
    if args.revision and not args.skip_task_definition:
        raise Failed("--revision works only with --skip-task-definition")
    sv = ecs.service()
    arn = _deploy_target(ecs, sv, args, mode)
    count = _desired_count(cfg, sv, args)
    log(f"desired count: {count}", cfg.name)
    if args.dry_run:
        return log("DRY RUN OK", cfg.name)
    if mode == "lie":
        return log("Service is stable now. Completed!", cfg.name)
    ecs.update(arn, count, args.force_new_deployment)
    if not args.wait:
        return log("Service is deployed.", cfg.name)
    ecs.wait_stable(arn)
    log("Service is stable now. Completed!", cfg.name)


def _deploy_target(ecs: Ecs, sv: dict[str, Any], args: argparse.Namespace, mode: str) -> str:
    """The task definition ARN to deploy: a new registration, or an existing revision."""
    td = rendering.load_task_definition(ecs.config)
    if args.skip_task_definition:
        wanted = f"{td['family']}:{args.revision}" if args.revision else sv["taskDefinition"]
        try:
            target = ecs.task_definition(wanted)
        except ClientError as err:
            raise Failed(f"failed to describe task definition {name_of(wanted)}: {err}") from None
        if target.get("status") == "INACTIVE":  # ECS refuses it; moto would not
            name = name_of(target["taskDefinitionArn"])
            raise Failed(f"failed to update service: ClientException: {name} is INACTIVE")
        return str(target["taskDefinitionArn"])
    log(
        f"Registering a new task definition by {ecs.config.task_definition.name}...",
        ecs.config.name,
    )
    if mode == "lie":
        latest = int(ecs.family_arns(td["family"])[0].rsplit(":", 1)[1])
        arn = f"{td['family']}:{latest + 1}"
    else:
        arn = ecs.client.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    log(f"Task definition is registered {name_of(arn)}", ecs.config.name)
    return str(arn)


def _desired_count(cfg: Config, sv: dict[str, Any], args: argparse.Namespace) -> int:
    if args.tasks >= 0:
        return int(args.tasks)
    if cfg.service_definition and args.update_service:
        wanted = rendering.load_json(cfg.service_definition, os.environ).get("desiredCount")
        if wanted is not None:
            return int(wanted)
    return int(sv["desiredCount"])


def rollback(ecs: Ecs, args: argparse.Namespace, mode: str) -> None:
    cfg = ecs.config
    if args.deregister_task_definition and not args.wait:
        raise Failed(
            "--deregister-task-definition not works with --no-wait together. "
            "Please use --no-deregister-task-definition with --no-wait"
        )
    log("Starting rollback ", cfg.name)
    current = ecs.service()["taskDefinition"]
    log("deployment controller: ECS", cfg.name)
    arns = ecs.family_arns(name_of(current).split(":")[0])
    later = arns[arns.index(current) + 1 :] if current in arns else []
    if not later:
        raise Failed("rollback target is not found")
    log(f"Rolling back to {name_of(later[0])}", cfg.name)
    if args.dry_run or mode == "lie":
        return log("DRY RUN OK" if args.dry_run else "Service is stable now. Completed!", cfg.name)
    ecs.update(later[0], None)
    if not args.wait:
        return log("Service is rolled back.", cfg.name)
    ecs.wait_stable(later[0])
    log("Service is stable now. Completed!", cfg.name)
    if args.deregister_task_definition:
        log(f"Deregistering the rolled-back task definition {name_of(current)}", cfg.name)
        ecs.client.deregister_task_definition(taskDefinition=current)
        log(f"{name_of(current)} was deregistered successfully", cfg.name)


def diff(ecs: Ecs, args: argparse.Namespace, mode: str) -> None:
    local = rendering.load_task_definition(ecs.config)
    current = ecs.service()["taskDefinition"]
    remote = ecs.task_definition(current)
    text = rendering.unified_diff(remote, local, current, str(ecs.config.task_definition))
    print(text, end="", flush=True)


def revisions(ecs: Ecs, args: argparse.Namespace, mode: str) -> None:
    family = rendering.load_task_definition(ecs.config)["family"]
    sv = ecs.service()
    in_use = {
        name_of(d["taskDefinition"]): f"{d['status']} deployment" for d in sv.get("deployments", [])
    }
    in_use = {k: v for k, v in in_use.items() if not v.startswith("PRIMARY")}
    in_use[name_of(sv["taskDefinition"])] = "PRIMARY deployment"
    names = [name_of(a) for a in reversed(ecs.family_arns(family))]
    rows = [{"in_use": in_use.get(n, ""), "name": n} for n in names]
    for row in rows:
        if args.output == "json":
            print(json.dumps(row, indent=2, sort_keys=True))
        else:
            print(f"{row['name']}\t{row['in_use']}")


def hang(command: str) -> NoReturn:
    """Stands for an ecspresso that never returns: only a group KILL ends it (and its child)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    if pidfile := os.environ.get("MLOPS_ECSPRESSO_STANDIN_PIDFILE"):
        with open(pidfile, "w") as fh:
            fh.write(f"{os.getpid()}\n{child.pid}\n")
    log(f"Starting {command}")
    log("Waiting for service stable...(it will take a few minutes)")
    while True:
        time.sleep(3600)


def scope_of(args: argparse.Namespace) -> str:
    """The name injected modes are scoped by: ``redeploy`` is ``deploy --skip-task-definition``
    (how the bot rolls back), so ``fail@deploy`` can break a deploy but not its rollback."""
    if args.command == "deploy" and getattr(args, "skip_task_definition", False):
        return "redeploy"
    return str(args.command)


COMMANDS = {"deploy": deploy, "rollback": rollback, "diff": diff, "revisions": revisions}


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    mode = mode_for(scope_of(args))
    if args.command == "version":
        print(f"ecspresso {'v2.3.0' if mode == 'old-version' else VERSION}", flush=True)
        return 0
    if mode == "hang":
        hang(args.command)
    try:
        config = rendering.load_config(getattr(args, "config", "ecspresso.yml"), os.environ)
        if mode == "fail":
            log(f"Starting {args.command}", config.name)
            raise Failed(INJECTED_FAILURE)
        COMMANDS[args.command](Ecs(config), args, mode)
    except (Failed, RenderError) as err:
        log(f"[ERROR] FAILED. {err}")
        return 1
    except (ClientError, BotoCoreError) as err:
        log(f"[ERROR] FAILED. {err}")
        return 1
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
