"""The crash trials of one store backend run together (a few at a time) the first time a test
asks for one of them; each test then asserts on its own trial's outcome."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from bot.sandbox.crashes.suite import postgres_stores, run_trials, sqlite_stores
from bot.sandbox.crashes.trial import NAMED, Outcome, Trial, burst_trial, random_trial
from tests.pg import PostgresUnavailable, running_postgres

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
BURST_KILLS, BURST_PIPELINES = 4, 10  # the suite's sample; bench/crash_anywhere.py --burst: more


def trial_named(name: str) -> Trial:
    if name in NAMED:
        return NAMED[name]
    kind, _, seed = name.rpartition("-")
    if kind == "burst":
        return burst_trial(int(seed), kills=BURST_KILLS, pipelines=BURST_PIPELINES)
    return random_trial(int(seed))


@pytest.fixture(scope="session")
def crash_postgres_url() -> Iterator[str]:
    """One server for the crash trials; skipped when it cannot be provisioned, except on CI."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(running_postgres())
        except PostgresUnavailable as err:
            reason = f"PostgreSQL could not be provisioned by scripts/postgres: {err}"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
        yield url


@pytest.fixture(scope="session")
def outcome_cache() -> dict[str, dict[str, Outcome]]:
    return {}


def selected(session: pytest.Session, backend: str) -> list[Trial]:
    """The trials of ``backend`` this session runs (all of them, unless tests were picked)."""
    names = []
    for item in session.items:
        params = getattr(item, "callspec", None)
        if params is None or params.params.get("backend") != backend:
            continue
        if (name := params.params.get("trial")) is not None and name not in names:
            names.append(name)
    return [trial_named(name) for name in names]


@pytest.fixture
def outcomes(
    backend: str,
    request: pytest.FixtureRequest,
    outcome_cache: dict[str, dict[str, Outcome]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Outcome]:
    if backend not in outcome_cache:
        directory = tmp_path_factory.mktemp(f"crash-{backend}")
        stores = (
            sqlite_stores(directory)
            if backend == "sqlite"
            else postgres_stores(request.getfixturevalue("crash_postgres_url"))
        )
        trials = selected(request.session, backend)
        outcome_cache[backend] = asyncio.run(run_trials(trials, stores, directory))
    return outcome_cache[backend]
