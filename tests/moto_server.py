"""pytest fixtures over the sandbox's moto server (bot/sandbox/aws.py).

Usage in a test module::

    moto_server, moto = moto_fixtures()   # session server + a fresh (reset) one per test
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.sandbox.aws import CREDENTIALS, MotoServer, running_moto

__all__ = ["CREDENTIALS", "MotoServer", "moto_fixtures", "running_moto"]


def moto_fixtures(
    name: str = "moto", *, ecs_running: int = 1
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """A session-scoped ``<name>_server`` fixture and a ``<name>`` fixture that resets it."""

    @pytest.fixture(scope="session", name=f"{name}_server")
    def server() -> Iterator[MotoServer]:
        with running_moto(ecs_running=ecs_running) as moto:
            yield moto

    @pytest.fixture(name=name)
    def fresh(request: pytest.FixtureRequest) -> MotoServer:
        moto: MotoServer = request.getfixturevalue(f"{name}_server")
        moto.reset()
        return moto

    return server, fresh
