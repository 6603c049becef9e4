"""ecspresso's command line as kong (v0.8) parses it: the flag table of the global flags and of
every subcommand the stand-in implements, and a parser with kong's rules.

The table mirrors ``reference/ecspresso/cli.json`` (tests/contracts holds a copy and checks it):
long flags match exactly (no abbreviations), ``--no-X`` exists only for negatable flags,
``--flag=value`` and ``--flag value`` both work, enums and integer types are enforced, and
global flags may come before or after the subcommand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ROLLBACK_EVENTS = ("DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST")
RENDER_TARGETS = ("config", "service-definition", "servicedef", "task-definition", "taskdef")
# Every command of the real CLI; the ones without a table entry are not played by the stand-in.
REAL_COMMANDS = (
    "appspec",
    "delete",
    "deploy",
    "deregister",
    "diff",
    "exec",
    "init",
    "refresh",
    "register",
    "render",
    "revisions",
    "rollback",
    "run",
    "scale",
    "status",
    "tasks",
    "verify",
    "version",
    "wait",
)
INT_BITS = {"int32": 32, "int64": 64, "int": 64}
GO_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


class ParseError(Exception):
    """kong refused the arguments: ``failed to parse args: <this>``, exit 1."""


@dataclass(frozen=True)
class Flag:
    """One long flag. ``kind``: bool, string, int32, int64, int, duration, enum, list, map."""

    name: str
    kind: str
    default: Any = None
    negatable: bool = False
    env: str | None = None
    enum: tuple[str, ...] = ()


def _bool(name: str, default: bool | None = False, *, negatable: bool = False) -> Flag:
    return Flag(name, "bool", default, negatable=negatable)


DRY_RUN = _bool("dry-run")
WAIT = _bool("wait", True, negatable=True)
EVENTS = Flag("rollback-events", "string", "")

GLOBAL_FLAGS = (
    _bool("help"),
    Flag("envfile", "list", (), env="ECSPRESSO_ENVFILE"),
    Flag("debug", "bool", False, env="ECSPRESSO_DEBUG"),
    Flag("ext-str", "map", None, env="ECSPRESSO_EXT_STR"),
    Flag("ext-code", "map", None, env="ECSPRESSO_EXT_CODE"),
    Flag("config", "string", "ecspresso.yml", env="ECSPRESSO_CONFIG"),
    Flag("assume-role-arn", "string", "", env="ECSPRESSO_ASSUME_ROLE_ARN"),
    Flag("timeout", "duration", None, env="ECSPRESSO_TIMEOUT"),
    Flag("filter-command", "string", "", env="ECSPRESSO_FILTER_COMMAND"),
)

COMMAND_FLAGS: dict[str, tuple[Flag, ...]] = {
    "deploy": (
        DRY_RUN,
        Flag("tasks", "int32", -1),
        _bool("skip-task-definition"),
        Flag("revision", "int64", 0),
        _bool("force-new-deployment"),
        WAIT,
        _bool("suspend-auto-scaling", None),  # *bool: nil when absent
        _bool("resume-auto-scaling", None),
        Flag("auto-scaling-min", "int32"),
        Flag("auto-scaling-max", "int32"),
        EVENTS,
        _bool("update-service", True, negatable=True),
        _bool("latest-task-definition"),
    ),
    "rollback": (
        DRY_RUN,
        _bool("deregister-task-definition", True, negatable=True),
        WAIT,
        EVENTS,
    ),
    "diff": (_bool("unified", True, negatable=True),),
    "revisions": (
        Flag("revision", "string", ""),
        Flag("output", "enum", "table", enum=("json", "table", "tsv")),
    ),
    "render": (_bool("jsonnet"),),
    "version": (),
}
POSITIONALS = {"render": RENDER_TARGETS}


@dataclass
class Parsed:
    """What the arguments asked for: flag values by long name (defaults filled in)."""

    command: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    given: set[str] = field(default_factory=set)
    targets: list[str] = field(default_factory=list)
    help: bool = False

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> Parsed:
    """kong's parse of ``argv``; ParseError with kong's message on anything it would refuse."""
    if not argv or list(argv) == ["help"]:
        return Parsed(help=True)
    parsed = Parsed()
    words = list(argv)
    only_args = False
    while words:
        word = words.pop(0)
        if only_args or word == "-" or not word.startswith("-"):
            _positional(parsed, word)
        elif word == "--":
            only_args = True
        elif word in ("-h", "--help"):
            parsed.help = True
        elif word.startswith("--"):
            _long_flag(parsed, word[2:], words)
        else:
            raise ParseError(f"unknown flag {word[:2]}")
    if parsed.help:
        return parsed
    _finish(parsed, environ)
    return parsed


def flags_of(command: str) -> tuple[Flag, ...]:
    """The flags valid at this point: the global ones, then the command's once it is named."""
    return GLOBAL_FLAGS + COMMAND_FLAGS.get(command, ())


def _lookup(command: str, name: str) -> tuple[Flag, bool]:
    """The flag named exactly ``name`` (or its ``no-`` negation); ParseError otherwise."""
    by_name = {f.name: f for f in flags_of(command)}
    if name in by_name:
        return by_name[name], False
    base = name[3:] if name.startswith("no-") else ""
    if base in by_name and by_name[base].negatable:
        return by_name[base], True
    raise ParseError(f"unknown flag --{name}")


def _long_flag(parsed: Parsed, text: str, rest: list[str]) -> None:
    name, eq, value = text.partition("=")
    flag, negated = _lookup(parsed.command, name)
    if flag.kind == "bool":
        truth = _truth(flag, value) if eq else True
        _store(parsed, flag, truth != negated)
        return
    if not eq:
        if not rest or (rest[0].startswith("-") and rest[0] != "-"):
            got = f'"{rest[0]}" (long flag)' if rest else "EOL"
            raise ParseError(f"--{flag.name}: expected {_what(flag)} value but got {got}")
        value = rest.pop(0)
    _store(parsed, flag, convert(flag, value))


def _store(parsed: Parsed, flag: Flag, value: Any) -> None:
    old: Any = parsed.values.get(flag.name)
    if flag.kind == "list" and flag.name in parsed.given:
        value = (*old, *value)
    elif flag.kind == "map" and flag.name in parsed.given:
        value = {**old, **value}
    parsed.values[flag.name] = value
    parsed.given.add(flag.name)


def _positional(parsed: Parsed, token: str) -> None:
    if not parsed.command:
        if token not in REAL_COMMANDS:
            raise ParseError(f"unexpected argument {token}")
        parsed.command = token
        return
    allowed = POSITIONALS.get(parsed.command)
    if allowed is None:
        raise ParseError(f"unexpected argument {token}")
    if token not in allowed:
        choices = ",".join(f'"{t}"' for t in allowed)
        raise ParseError(f'<targets>: must be one of {choices} but got "{token}"')
    parsed.targets.append(token)


def _finish(parsed: Parsed, environ: Mapping[str, str]) -> None:
    """Missing command or arguments, then environment variables and defaults for the rest."""
    if not parsed.command:
        raise ParseError("expected one of " + ", ".join(f'"{c}"' for c in REAL_COMMANDS))
    if parsed.command in POSITIONALS and not parsed.targets:
        raise ParseError('expected "<targets> ..."')
    for flag in flags_of(parsed.command):
        if flag.name in parsed.given:
            continue
        if flag.env and environ.get(flag.env):
            raw = environ[flag.env]
            value = _truth(flag, raw) if flag.kind == "bool" else convert(flag, raw)
            parsed.values[flag.name] = value
        else:
            parsed.values[flag.name] = {} if flag.kind == "map" else flag.default


def convert(flag: Flag, value: str) -> Any:
    """A flag's text value as kong's mapper for its type turns it, or ParseError."""
    if flag.kind in INT_BITS:
        return _integer(flag, value)
    if flag.kind == "enum":
        if value not in flag.enum:
            choices = ",".join(f'"{c}"' for c in flag.enum)
            raise ParseError(f'--{flag.name} must be one of {choices} but got "{value}"')
        return value
    if flag.kind == "duration":
        try:
            return duration(value)
        except ValueError as err:
            raise ParseError(f"--{flag.name}: {err}") from None
    if flag.kind == "list":
        return tuple(v for v in value.split(",") if v)
    if flag.kind == "map":
        return _mapping(flag, value)
    return value


def _integer(flag: Flag, value: str) -> int:
    bits = INT_BITS[flag.kind]
    try:
        number = int(value.replace("_", ""), 0)
    except ValueError:
        number = None
    if number is None or not -(2 ** (bits - 1)) <= number < 2 ** (bits - 1):
        raise ParseError(f'--{flag.name}: expected a valid {bits} bit int but got "{value}"')
    return number


def _truth(flag: Flag, value: str) -> bool:
    """Go's strconv.ParseBool, as kong's bool mapper uses it for ``--flag=value``."""
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ParseError(
        f'--{flag.name}: bool value must be true, 1, yes, false, 0 or no but got "{value}"'
    )


def _mapping(flag: Flag, value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, value.split(";")):
        key, eq, val = item.partition("=")
        if not eq:
            raise ParseError(f'--{flag.name}: expected "<key>=<value>" but got "{item}"')
        out[key] = val
    return out


def _what(flag: Flag) -> str:
    return "string" if flag.kind in ("string", "enum", "list", "map", "duration") else "int"


def duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds (``90s``, ``1h30m``, ``1.5m``, ``0``)."""
    body = text[1:] if text[:1] in "+-" else text
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    parts = GO_DURATION.findall(body)
    valid = parts and "".join(n + u for n, u in parts) == body
    if not valid or any(n in ("", ".") for n, _ in parts):
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * sum(float(n) * GO_UNITS[u] for n, u in parts)


def usage(command: str = "") -> str:
    """kong's help, shortened: what ``-h`` prints on stdout."""
    lines = [f"Usage: ecspresso {command or '<command>'} [flags]", "", "Flags:"]
    lines += [f"  {_shown(f)}" for f in GLOBAL_FLAGS]
    if command:
        own = COMMAND_FLAGS.get(command, ())
        lines += ["", f"{command} flags:"] + [f"  {_shown(f)}" for f in own]
    else:
        lines += ["", "Commands:"] + [f"  {c}" for c in REAL_COMMANDS]
    return "\n".join(lines) + "\n"


def _shown(flag: Flag) -> str:
    name = f"--[no-]{flag.name}" if flag.negatable else f"--{flag.name}"
    short = "-h, " if flag.name == "help" else ""
    return f"{short}{name}" + (f"=<{flag.kind}>" if flag.kind != "bool" else "")
