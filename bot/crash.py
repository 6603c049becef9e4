"""Named crash points: where the crash harness (bot/sandbox/crashes) makes the bot die.

Off unless the CLI arms them from ``MLOPS_BOT_CRASH_AT`` (tests set it; nothing else does):
``name[@subject][,name[@subject]...]``, with ``MLOPS_BOT_CRASH_AFTER=N`` to die on the Nth hit
(default 1). A point whose name is armed, and whose subject matches when one is given, writes
one line to stderr and sends the process SIGKILL: no clean-up runs, as in a power cut or an OOM
kill. Unarmed, ``crash_point`` costs one attribute check.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.errors import UserInputError

CRASH_AT_ENV = "MLOPS_BOT_CRASH_AT"
CRASH_AFTER_ENV = "MLOPS_BOT_CRASH_AFTER"
HIT_MARK = "mlops-bot: crash point hit: "

# Every point, in lifecycle order; the harness runs a trial at each of them.
POINTS: tuple[str, ...] = (
    "interaction.recorded",  # a command, click or reaction is in the store; not acked yet
    "interaction.started",  # acked; its listener has not run yet
    "interaction.answered",  # replied to and marked processed; its listener not returned yet
    "run.recorded",  # the run row is written; no pipeline (or Job) exists yet
    "run.launched",  # the pipeline exists; its id is not stored yet
    "deploy.recorded",  # the deploy row is written; nothing else happened yet
    "ecspresso.diff",  # `ecspresso diff` is running
    "card.posted",  # chat.postMessage answered (subject: the card key); its ts is not stored
    "ecspresso.deploy",  # `ecspresso deploy` is running
    "deploy.succeeded",  # the deploy row turned succeeded; its card and lock not yet followed
    "webhook.recorded",  # a GitLab delivery is in the inbox; not answered yet
    "webhook.handled",  # the delivery's CI card is posted; the delivery not marked processed
    "reply.posted",  # a thread reply is posted (subject: its card key); not recorded yet
)


class UnknownCrashPoint(UserInputError):
    """``MLOPS_BOT_CRASH_AT`` names a point the code does not have."""


@dataclass
class _Armed:
    targets: dict[str, str | None] = field(default_factory=dict)  # name -> subject or any
    after: int = 1
    hits: int = 0


_armed = _Armed()


def parse(spec: str) -> dict[str, str | None]:
    """``"a,b@deploy:2"`` -> ``{"a": None, "b": "deploy:2"}``; unknown names are refused."""
    targets: dict[str, str | None] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, at, subject = item.partition("@")
        if name not in POINTS:
            raise UnknownCrashPoint(f"{CRASH_AT_ENV}: no crash point {name!r}; known: {POINTS}")
        targets[name] = subject if at else None
    return targets


def arm(environ: Mapping[str, str]) -> None:
    """Arm the points the environment names (the CLI calls this once, at start)."""
    targets = parse(environ.get(CRASH_AT_ENV, ""))
    after = environ.get(CRASH_AFTER_ENV, "") or "1"
    if not after.isdigit():
        raise UnknownCrashPoint(f"{CRASH_AFTER_ENV}: a count of hits, not {after!r}")
    _armed.targets, _armed.after, _armed.hits = targets, max(int(after), 1), 0


def disarm() -> None:
    _armed.targets = {}


def crash_point(name: str, subject: object = None) -> None:
    """Die here when ``name`` is armed (and ``subject``, when one was armed, is this one)."""
    if _armed.targets:
        _hit(name, subject)


def _hit(name: str, subject: object) -> None:
    if name not in _armed.targets:
        return
    wanted = _armed.targets[name]
    if wanted is not None and str(subject) != wanted:
        return
    _armed.hits += 1
    if _armed.hits < _armed.after:
        return
    os.write(2, f"{HIT_MARK}{name} ({subject})\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)
