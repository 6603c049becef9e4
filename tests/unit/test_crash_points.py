"""bot/crash.py: crash points are off unless armed, refuse unknown names, and SIGKILL the
process at the armed point (on its Nth hit, for the armed subject only)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from bot import crash
from bot.crash import CRASH_AFTER_ENV, CRASH_AT_ENV, HIT_MARK, POINTS, UnknownCrashPoint

SCRIPT = """
from bot import crash
import os, sys
crash.arm(os.environ)
for subject in sys.argv[1:]:
    crash.crash_point("deploy.recorded", subject)
    print("passed", subject, flush=True)
"""


def run(env: dict[str, str], *subjects: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *subjects],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_names_are_unique_and_parsed_with_their_subjects() -> None:
    assert len(set(POINTS)) == len(POINTS)
    assert crash.parse("run.recorded, card.posted@deploy:2") == {
        "run.recorded": None,
        "card.posted": "deploy:2",
    }
    assert crash.parse("") == {}


def test_an_unknown_point_or_count_is_refused() -> None:
    with pytest.raises(UnknownCrashPoint, match="no crash point 'nope'"):
        crash.arm({CRASH_AT_ENV: "nope"})
    with pytest.raises(UnknownCrashPoint, match="a count of hits"):
        crash.arm({CRASH_AT_ENV: "run.recorded", CRASH_AFTER_ENV: "soon"})


def test_unarmed_points_do_nothing() -> None:
    crash.arm({})
    for point in POINTS:
        crash.crash_point(point, "anything")


def test_an_armed_point_kills_the_process_on_the_chosen_hit_for_its_subject() -> None:
    env = {CRASH_AT_ENV: "deploy.recorded@7", CRASH_AFTER_ENV: "2"}
    done = run(env, "3", "7", "3", "7", "never")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split("\n")[:3] == ["passed 3", "passed 7", "passed 3"]
    assert f"{HIT_MARK}deploy.recorded (7)" in done.stderr


def test_the_cli_refuses_an_unknown_point_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "audit"],
        env={CRASH_AT_ENV: "nope", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("mlops-bot: MLOPS_BOT_CRASH_AT: no crash point 'nope'")
