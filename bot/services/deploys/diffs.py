"""What a deploy card says about ``ecspresso diff``: a summary (which parts differ, lines added
and removed) and, where the environment allows it, the diff itself with secrets scrubbed.

ecspresso prints unified diffs, the service first and the task definition second, each with a
``--- <remote ARN>`` / ``+++ <local file>`` header; empty output means no change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.logs import REDACTED, SECRET_KEYS, SecretScrubber

COMPUTING = "computing diff…"
UNAVAILABLE = "diff unavailable: "
SECRET_VALUE = re.compile(
    r'(?P<key>"?[A-Za-z0-9_.-]*(?:' + "|".join(SECRET_KEYS) + r'|key|credential)[A-Za-z0-9_.-]*"?'
    r'\s*[:=]\s*)(?P<value>"[^"]*"|\S+)',
    re.IGNORECASE,
)
NAMED_VALUE = re.compile(r'"name"\s*:\s*"(?P<name>[^"]*)"')
VALUE = re.compile(r'(?P<key>"value"\s*:\s*)(?P<value>"(?:[^"\\]|\\.)*")')


@dataclass(frozen=True)
class Part:
    """One file ecspresso compared: what it is, and the lines added and removed."""

    what: str
    added: int
    removed: int


def part_name(remote: str, local: str) -> str:
    for text in (remote, local):
        if ":service/" in text or "service" in text.rsplit("/", 1)[-1].lower():
            return "service definition"
        if ":task-definition/" in text or "task" in text.rsplit("/", 1)[-1].lower():
            return "task definition"
    return local.rsplit("/", 1)[-1] or "definition"


def parts(diff: str) -> list[Part]:
    """The files a unified diff compares, with their added and removed line counts."""
    found: list[Part] = []
    remote = ""
    for line in diff.splitlines():
        if line.startswith("--- "):
            remote = line[4:]
        elif line.startswith("+++ "):
            found.append(Part(part_name(remote, line[4:]), 0, 0))
        elif found and line.startswith("+"):
            last = found[-1]
            found[-1] = Part(last.what, last.added + 1, last.removed)
        elif found and line.startswith("-"):
            last = found[-1]
            found[-1] = Part(last.what, last.added, last.removed + 1)
    return found


def summary(diff: str) -> str:
    """One line: ``no change``, or each differing part with ``+added -removed`` lines."""
    if not diff.strip():
        return "no change"
    found = parts(diff)
    if not found:
        return f"{len(diff.splitlines())} lines of output (not a unified diff)"
    return "; ".join(f"{p.what}: +{p.added} -{p.removed} lines" for p in found)


LOCAL_FILE = re.compile(r"^\+\+\+ (?:\S*/)?(?P<name>[^/\s]+)", re.MULTILINE)


def local_names(diff: str) -> str:
    """``+++`` headers name the local file by its name alone: the directory the bot checked
    the config out into (a temporary path) is of no use to a reader."""
    return LOCAL_FILE.sub(lambda m: f"+++ {m.group('name')}", diff)


def scrub(diff: str, scrubber: SecretScrubber, extra: Iterable[str] = ()) -> str:
    """The diff without known secrets (the bot's tokens, the credentials it hands ecspresso),
    without values of secret-looking keys, and without values of task-definition environment
    entries whose name looks secret (``{"name": "DB_PASSWORD", "value": "..."}``); local
    paths shortened to file names."""
    text = SecretScrubber([*scrubber.secrets, *extra]).scrub(local_names(diff))
    text = SECRET_VALUE.sub(lambda m: m.group("key") + _redacted(m.group("value")), text)
    lines = text.splitlines(keepends=True)
    secret_name = False
    for i, line in enumerate(lines):
        named = NAMED_VALUE.search(line)
        if named:
            secret_name = looks_secret(named.group("name"))
        if secret_name and VALUE.search(line):
            lines[i] = VALUE.sub(lambda m: m.group("key") + f'"{REDACTED}"', line)
            secret_name = False
    return "".join(lines)


def looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in (*SECRET_KEYS, "key", "credential"))


def _redacted(value: str) -> str:
    quoted = value.startswith('"')
    tail = "," if value.endswith(",") and not quoted else ""
    return f'"{REDACTED}"' if quoted else REDACTED + tail
