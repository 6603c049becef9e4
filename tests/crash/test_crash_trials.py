"""Crash trials (issue 12): the bot as its own process against stand-ins that outlive it, killed
at every named crash point and at 20 seeded random moments, restarted on the same store, on
SQLite and on PostgreSQL. Each trial asserts every invariant in
bot/sandbox/crashes/invariants.py after things settle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.crash import POINTS
from bot.sandbox.crashes.invariants import ONE_CARD, ONE_ECSPRESSO, ONE_REPLY
from bot.sandbox.crashes.process import kill_all, processes_with
from bot.sandbox.crashes.trial import NAMED, Outcome
from tests.crash.conftest import BACKENDS, BURST_KILLS

RANDOM_SEEDS = range(1, 21)
BURST_SEEDS = (1,)

# Invariants that break today at these points, while the fixes of issue 12 land (none left: the
# last, a prod /deploy's reply lost at `card.posted`, went when replies came before the card).
# The marks name the invariant; a trial that passes anyway is fine.
KNOWN: dict[str, tuple[str, ...]] = {}
# What a random kill may hit today, in windows of a few milliseconds no named point isolates:
# any of the above; a duplicate card; a second reply to a click or command whose reply went out
# just before the kill, before its audit line marked it answered (the replay answers again); a
# second ecspresso whose process group was not yet recorded (docs/deploys.md). Seen once in
# 40 random trials (ONE_REPLY, an Approve click on PostgreSQL).
KNOWN_AT_RANDOM = frozenset(name for names in KNOWN.values() for name in names) | {
    ONE_CARD,
    ONE_REPLY,
    ONE_ECSPRESSO,
}


def named_cases() -> list[object]:
    cases: list[object] = []
    for point in POINTS:
        broken = KNOWN.get(point)
        marks = (
            [pytest.mark.xfail(strict=False, reason=f"breaks today: {', '.join(broken)}")]
            if broken
            else []
        )
        cases.append(pytest.param(point, marks=marks, id=point))
    return cases


def assert_clean(outcome: Outcome) -> None:
    assert not outcome.error, outcome.report()
    assert outcome.reached, outcome.report()
    assert not outcome.broken, outcome.report()


def test_every_crash_point_has_its_trial() -> None:
    assert set(NAMED) == set(POINTS)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("trial", named_cases())
def test_a_kill_at_a_named_point_leaves_nothing_lost_doubled_or_stranded(
    trial: str, backend: str, outcomes: dict[str, Outcome]
) -> None:
    assert_clean(outcomes[trial])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("trial", [f"random-{seed}" for seed in RANDOM_SEEDS])
def test_a_kill_at_a_random_moment_leaves_nothing_lost_doubled_or_stranded(
    trial: str, backend: str, outcomes: dict[str, Outcome]
) -> None:
    """Where a random kill lands depends on timing; a trial that breaks only invariants the
    named points already show broken today is an expected failure, anything else fails."""
    outcome = outcomes[trial]
    if outcome.broken and not outcome.error and set(outcome.broken) <= KNOWN_AT_RANDOM:
        pytest.xfail(f"breaks today: {', '.join(sorted(outcome.broken))}\n{outcome.report()}")
    assert_clean(outcome)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("trial", [f"burst-{seed}" for seed in BURST_SEEDS])
def test_a_webhook_burst_killed_again_and_again_posts_every_card_and_reply_once(
    trial: str, backend: str, outcomes: dict[str, Outcome]
) -> None:
    outcome = outcomes[trial]
    assert_clean(outcome)
    # every life is killed during the burst (its moment counts from its first delivery)
    assert len(outcome.kills) == BURST_KILLS, outcome.report()


def test_the_orphan_check_finds_a_process_by_its_environment(tmp_path: Path) -> None:
    marker = f"MLOPS_ECSPRESSO_STANDIN_CONTROL={tmp_path / 'control'}"
    name, _, value = marker.partition("=")
    with subprocess.Popen(
        ["sleep", "60"], env={"PATH": "/usr/bin:/bin", name: value}, start_new_session=True
    ) as child:
        try:
            assert processes_with(marker) == [child.pid]
            assert processes_with(marker + "x") == []
        finally:
            kill_all([child.pid])
            child.wait(timeout=10)
    assert processes_with(marker) == []
