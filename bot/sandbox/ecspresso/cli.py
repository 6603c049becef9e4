"""A stand-in for the ecspresso CLI (v2) that makes the real ECS calls, against moto or AWS.

Run as ``python -m bot.sandbox.ecspresso.cli`` or through ``bot/sandbox/bin/ecspresso``.
It parses like ecspresso (kong; the flag table is bot/sandbox/ecspresso/flags.py, checked
against reference/ecspresso/cli.json by tests/contracts) and plays ``deploy``, ``rollback``,
``diff``, ``revisions``, ``render`` and ``version`` with ecspresso's exit codes and output:
log lines on stderr (``2025/01/01 12:00:00 fraud-api/ml-stg Starting deploy``), data on
stdout, ``[ERROR] FAILED. ...`` and exit 1 on failure, ``[WARNING] Interrupted`` and exit 1 on
SIGTERM/SIGINT, a Go panic and exit 2 on an unset ``must_env``. Like any Go program that does
not trap SIGPIPE (ecspresso traps only SIGINT and SIGTERM, cmd/ecspresso/unix.go), a write to
a stdout or stderr whose reader is gone kills it with SIGPIPE. AWS endpoint, region and
credentials come from the usual AWS_* variables.

Failure injection, per invocation, from MLOPS_ECSPRESSO_STANDIN_MODE (or the first line of
the file named by MLOPS_ECSPRESSO_STANDIN_CONTROL, which wins): ``;``-separated items
``mode`` or ``mode@cmd,cmd`` (``redeploy`` names a deploy of an existing revision:
``--revision N``, ``--skip-task-definition`` or ``--latest-task-definition``).
Modes: ``fail`` (exit 1, ECS untouched), ``hang`` (never ends by itself, whatever the
deadline: a wedged process; has a child; pids go to MLOPS_ECSPRESSO_STANDIN_PIDFILE; SIGTERM
ends it with ``Interrupted``), ``hang-registered`` (a deploy that registers its task
definition, then hangs as ``hang`` before it updates the service), ``lie`` (prints success,
exits 0, changes nothing), ``old-version`` (``ecspresso v2.3.0``), ``ok`` (nothing). Without
``@``, ``lie`` applies to deploy and rollback, ``old-version`` to version, the others to all
but version.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from bot.sandbox.ecspresso import render as rendering
from bot.sandbox.ecspresso.ecs import UPDATE_KEYS, Ecs, Failed, log, name_of
from bot.sandbox.ecspresso.flags import (
    COMMAND_FLAGS,
    ROLLBACK_EVENTS,
    Parsed,
    ParseError,
    parse,
    usage,
)
from bot.sandbox.ecspresso.render import Config, MustEnvUnset, RenderError

VERSION = "v2.4.5"
INJECTED_FAILURE = (
    "failed to wait service stable: ECS deployment circuit breaker: tasks failed to start"
    " (injected by MLOPS_ECSPRESSO_STANDIN_MODE=fail)"
)
DEFAULT_SCOPE = {"lie": {"deploy", "rollback"}, "old-version": {"version"}}


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: ecspresso cancels its context and exits 1."""


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
            return "" if mode == "ok" else mode
    return ""


def check_rollback_events(opts: Parsed) -> None:
    events = [e for e in str(opts["rollback-events"]).split(",") if e]
    if bad := [e for e in events if e not in ROLLBACK_EVENTS]:
        raise Failed(f"invalid rollback events: {','.join(bad)}")


def deploy(ecs: Ecs, opts: Parsed, mode: str) -> None:
    cfg = ecs.config
    check_rollback_events(opts)
    if opts["revision"] and opts["latest-task-definition"]:
        raise Failed("revision and latest-task-definition are exclusive")
    log("Starting deploy" + (" DRY RUN" if opts["dry-run"] else ""), cfg.name)
    sv = ecs.find_service()
    if sv is None:
        return create_service(ecs, opts, mode)
    arn = _deploy_target(ecs, sv, opts, mode)
    if mode == "hang-registered":
        hang(opts.command)
    attributes = _changed_attributes(cfg, sv, opts)
    log(
        "Updating service attributes..." if attributes else "service attributes will not change",
        cfg.name,
    )
    count = _desired_count(cfg, sv, opts)
    log(f"desired count: {'unchanged' if count is None else count}", cfg.name)
    if opts["dry-run"]:
        return log("DRY RUN OK", cfg.name)
    if mode == "lie":
        return log("Service is stable now. Completed!", cfg.name)
    ecs.update(arn, count, opts["force-new-deployment"], attributes)
    if not opts["wait"]:
        return log("Service is deployed.", cfg.name)
    ecs.wait_stable(arn)
    log("Service is stable now. Completed!", cfg.name)


def create_service(ecs: Ecs, opts: Parsed, mode: str) -> None:
    """deploy of a service ECS does not have: ecspresso creates it from the definition file."""
    cfg = ecs.config
    log(f"Service {cfg.service} not found. Creating a new service", cfg.name)
    if cfg.service_definition is None:
        raise Failed("service_definition is required to create a new service")
    definition = rendering.load_json(cfg.service_definition, os.environ)
    arn = _register(ecs, mode) if not opts["dry-run"] else "(dry run)"
    if opts["dry-run"] or mode == "lie":
        return log(
            "DRY RUN OK" if opts["dry-run"] else "Service is stable now. Completed!", cfg.name
        )
    tasks = int(opts["tasks"])
    ecs.create(arn, definition, tasks if tasks >= 0 else None)
    log(f"Service {cfg.service} is created", cfg.name)
    if not opts["wait"]:
        return None
    ecs.wait_stable(arn)
    log("Service is stable now. Completed!", cfg.name)


def _deploy_target(ecs: Ecs, sv: dict[str, Any], opts: Parsed, mode: str) -> str:
    """The task definition ARN to deploy: a new registration, or an existing revision."""
    if opts["revision"]:  # wins on its own; the family is the running service's
        family = name_of(sv["taskDefinition"]).rsplit(":", 1)[0]
        return _existing(ecs, f"{family}:{opts['revision']}")
    if opts["latest-task-definition"]:
        family = rendering.load_task_definition(ecs.config)["family"]
        return _existing(ecs, ecs.family_arns(family)[0])
    if opts["skip-task-definition"]:
        return _existing(ecs, sv["taskDefinition"])
    return _register(ecs, mode)


def _existing(ecs: Ecs, wanted: str) -> str:
    try:
        target = ecs.task_definition(wanted)
    except ClientError as err:
        raise Failed(f"failed to describe task definition {name_of(wanted)}: {err}") from None
    if target.get("status") == "INACTIVE":  # ECS refuses it; moto would not
        name = name_of(target["taskDefinitionArn"])
        raise Failed(f"failed to update service: ClientException: {name} is INACTIVE")
    return str(target["taskDefinitionArn"])


def _register(ecs: Ecs, mode: str) -> str:
    td = rendering.load_task_definition(ecs.config)
    log(
        f"Registering a new task definition by {ecs.config.task_definition.name}...",
        ecs.config.name,
    )
    if mode == "lie":
        arns = ecs.family_arns(td["family"])
        latest = int(arns[0].rsplit(":", 1)[1]) if arns else 0
        arn = f"{td['family']}:{latest + 1}"
    else:
        arn = ecs.client.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    log(f"Task definition is registered {name_of(arn)}", ecs.config.name)
    return str(arn)


def _service_definition(cfg: Config, opts: Parsed) -> dict[str, Any]:
    """The rendered service definition when deploy applies it (not with --no-update-service)."""
    if cfg.service_definition is None or not opts["update-service"]:
        return {}
    return rendering.load_json(cfg.service_definition, os.environ)


def _changed_attributes(cfg: Config, sv: dict[str, Any], opts: Parsed) -> dict[str, Any]:
    wanted = _service_definition(cfg, opts)
    changed = {k: v for k, v in wanted.items() if k in UPDATE_KEYS}
    return {
        k: v
        for k, v in changed.items()
        if rendering.comparable(v) != rendering.comparable(sv.get(k))
    }


def _desired_count(cfg: Config, sv: dict[str, Any], opts: Parsed) -> int | None:
    """--tasks, else the definition's desiredCount when applied, else None (unchanged)."""
    if int(opts["tasks"]) >= 0:
        return int(opts["tasks"])
    wanted = _service_definition(cfg, opts).get("desiredCount")
    return None if wanted is None else int(wanted)


def rollback(ecs: Ecs, opts: Parsed, mode: str) -> None:
    cfg = ecs.config
    check_rollback_events(opts)
    if opts["deregister-task-definition"] and not opts["wait"]:
        raise Failed(
            "--deregister-task-definition not works with --no-wait together. "
            "Please use --no-deregister-task-definition with --no-wait"
        )
    log("Starting rollback" + (" DRY RUN" if opts["dry-run"] else ""), cfg.name)
    current = ecs.service()["taskDefinition"]
    log("deployment controller: ECS", cfg.name)
    arns = ecs.family_arns(name_of(current).split(":")[0])
    later = arns[arns.index(current) + 1 :] if current in arns else []
    if not later:
        raise Failed("rollback target is not found")
    log(f"Rolling back to {name_of(later[0])}", cfg.name)
    if opts["dry-run"] or mode == "lie":
        return log(
            "DRY RUN OK" if opts["dry-run"] else "Service is stable now. Completed!", cfg.name
        )
    ecs.update(later[0], None)
    if not opts["wait"]:
        return log("Service is rolled back.", cfg.name)
    ecs.wait_stable(later[0])
    log("Service is stable now. Completed!", cfg.name)
    if opts["deregister-task-definition"]:
        log(f"Deregistering the rolled-back task definition {name_of(current)}", cfg.name)
        ecs.client.deregister_task_definition(taskDefinition=current)
        log(f"{name_of(current)} was deregistered successfully", cfg.name)


def diff(ecs: Ecs, opts: Parsed, mode: str) -> None:
    """The service definition's diff, then the task definition's; exit 0 either way."""
    cfg = ecs.config
    local = rendering.load_task_definition(cfg)
    sv = ecs.find_service()
    if cfg.service_definition is not None:
        wanted = rendering.load_json(cfg.service_definition, os.environ)
        print(rendering.service_diff(sv, wanted, str(cfg.service_definition)), end="")
    remote = ecs.task_definition(sv["taskDefinition"]) if sv else None
    name = str(remote["taskDefinitionArn"]) if remote else ""
    print(rendering.unified_diff(remote, local, name, str(cfg.task_definition)), end="", flush=True)


def revisions(ecs: Ecs, opts: Parsed, mode: str) -> None:
    if opts["revision"]:
        return print(json.dumps(_one_revision(ecs, str(opts["revision"])), indent=2), flush=True)
    family = rendering.load_task_definition(ecs.config)["family"]
    sv = ecs.service() if ecs.config.service else None
    in_use = ecs.tasks_in_use()
    for d in (sv or {}).get("deployments", []):
        in_use[name_of(d["taskDefinition"])] = f"{d['status']} deployment"
    if sv:  # moto freezes a deployment's taskDefinition; ECS keeps PRIMARY's = the service's
        in_use = {k: v for k, v in in_use.items() if not v.startswith("PRIMARY")}
        in_use[name_of(sv["taskDefinition"])] = "PRIMARY deployment"
    rows = [
        {"in_use": in_use.get(n, ""), "name": n}
        for n in (name_of(a) for a in reversed(ecs.family_arns(family)))
    ]
    print(_revision_rows(rows, str(opts["output"])), end="", flush=True)


def _one_revision(ecs: Ecs, which: str) -> dict[str, Any]:
    family = rendering.load_task_definition(ecs.config)["family"]
    if which == "current":
        name = ecs.service()["taskDefinition"]
    elif which == "latest":
        name = ecs.family_arns(family)[0]
    else:
        name = f"{family}:{which}"
    found = ecs.client.describe_task_definition(taskDefinition=name, include=["TAGS"])
    return {**found["taskDefinition"], "tags": found.get("tags", [])}


def _revision_rows(rows: list[dict[str, str]], output: str) -> str:
    if output == "json":  # a stream of indented objects, not an array
        return "".join(json.dumps(r, indent=2) + "\n" for r in rows)
    if output == "tsv":
        return "".join(f"{r['name']}\t{r['in_use']}\n" for r in rows)
    width = [
        max([len("Name"), *(len(r["name"]) for r in rows)]),
        max([len("In Use"), *(len(r["in_use"]) for r in rows)]),
    ]
    border = "+" + "+".join("-" * (w + 2) for w in width) + "+\n"

    def line(a: str, b: str) -> str:
        return f"| {a.ljust(width[0])} | {b.ljust(width[1])} |\n"

    body = "".join(line(r["name"], r["in_use"]) for r in rows)
    return border + line("Name", "In Use") + border + body + border


def render(config: Config, opts: Parsed) -> None:
    """``render config|servicedef|taskdef ...``: each rendered file on stdout, in order."""
    for target in opts.targets:
        if target == "config":
            print(rendering.rendered_config(config), end="")
        elif target in ("servicedef", "service-definition"):
            if config.service_definition is None:
                raise Failed("service_definition is not defined in the config")
            print(json.dumps(rendering.load_json(config.service_definition, os.environ), indent=2))
        else:
            print(json.dumps(rendering.load_task_definition(config), indent=2))
    sys.stdout.flush()


def hang(command: str) -> NoReturn:
    """Stands for a wedged ecspresso: no deadline ends it, SIGTERM does (``Interrupted``)."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    try:
        if pidfile := os.environ.get("MLOPS_ECSPRESSO_STANDIN_PIDFILE"):
            with open(pidfile, "w") as fh:
                fh.write(f"{os.getpid()}\n{child.pid}\n")
        log(f"Starting {command}")
        log("Waiting for service stable...(it will take a few minutes)")
        while True:
            time.sleep(3600)
    finally:
        child.kill()
        child.wait()


def scope_of(opts: Parsed) -> str:
    """The name injected modes are scoped by: ``redeploy`` is a deploy of an existing revision
    (how the bot rolls back), so ``fail@deploy`` can break a deploy but not its rollback."""
    if opts.command == "deploy" and any(
        opts[f] for f in ("revision", "skip-task-definition", "latest-task-definition")
    ):
        return "redeploy"
    return opts.command


ECS_COMMANDS: dict[str, Callable[[Ecs, Parsed, str], None]] = {
    "deploy": deploy,
    "rollback": rollback,
    "diff": diff,
    "revisions": revisions,
}


def load_envfiles(paths: tuple[str, ...]) -> None:
    """``--envfile``: dotenv entries exported before anything is read, overriding the env."""
    for path in paths:
        try:
            text = open(path).read()  # noqa: SIM115 (read whole, closed by refcount)
        except OSError as exc:
            raise Failed(f"failed to load envfile {path}: {exc.strerror}") from None
        for raw in text.splitlines():
            line = raw.strip().removeprefix("export ").strip()
            key, eq, value = line.partition("=")
            if not eq or line.startswith("#"):
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            os.environ[key.strip()] = value


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def _deadline(signum: int, frame: FrameType | None) -> None:
    raise Failed("context deadline exceeded")


def set_deadline(seconds: float, started: float) -> None:
    """The command's context deadline, counted from the start of the process."""
    signal.signal(signal.SIGALRM, _deadline)
    left = max(seconds - (time.monotonic() - started), 0.001)
    signal.setitimer(signal.ITIMER_REAL, left)


def execute(opts: Parsed, started: float) -> None:
    """Everything after parsing; raises Failed/RenderError/AWS errors as ecspresso fails."""
    load_envfiles(tuple(opts["envfile"]))
    if opts["timeout"] is not None:
        set_deadline(float(opts["timeout"]), started)
    if opts.command == "version":
        mode = mode_for("version")
        return print(f"ecspresso {'v2.3.0' if mode == 'old-version' else VERSION}", flush=True)
    log(f"[INFO] ecspresso version: {VERSION}")
    if opts.command not in COMMAND_FLAGS:
        raise Failed(f"{opts.command} is not played by the ecspresso stand-in")
    mode = mode_for(scope_of(opts))
    if mode == "hang":
        hang(opts.command)
    config = rendering.load_config(str(rendering.config_path(opts["config"])), os.environ)
    if opts["timeout"] is None:
        set_deadline(config.timeout, started)
    if mode == "fail":
        log(f"Starting {opts.command}", config.name)
        raise Failed(INJECTED_FAILURE)
    if opts.command == "render":
        return render(config, opts)
    ECS_COMMANDS[opts.command](Ecs(config), opts, mode)


def run(argv: list[str]) -> int:
    started = time.monotonic()
    try:
        opts = parse(argv, os.environ)
    except ParseError as err:
        log(f"[ERROR] FAILED. failed to parse args: {err}")
        return 1
    if opts.help:
        print(usage(opts.command), end="", flush=True)
        return 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # Go's default for fds 1 and 2
    try:
        execute(opts, started)
    except Interrupted:
        log("[WARNING] Interrupted")
        return 1
    except MustEnvUnset as panic:
        sys.stderr.write(panic.panic_text())
        return 2
    except (Failed, RenderError, ClientError, BotoCoreError) as err:
        log(f"[ERROR] FAILED. {err}")
        return 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
