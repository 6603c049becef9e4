"""A throwaway PostgreSQL server for tests, provisioned by the project's ``scripts/postgres``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres"
START_TIMEOUT = 600.0  # generous: the first run may apt-get install PostgreSQL


class PostgresUnavailable(RuntimeError):
    """The script could not provision a server; the message carries its output."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(*args: str, timeout: float) -> str:
    try:
        done = subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise PostgresUnavailable(f"{SCRIPT.name} {args[0]}: {err}") from err
    if done.returncode != 0:
        raise PostgresUnavailable(f"{SCRIPT.name} {args[0]} failed:\n{done.stderr.strip()}")
    return done.stdout.strip()


def _stop(workdir: str) -> None:
    try:
        _run("stop", workdir, timeout=60)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def running_postgres() -> Iterator[str]:
    """Start a server in a fresh temp dir, yield its URL, stop it and remove the dir."""
    # Not pytest's tmp_path: that lives under a root-only dir the postgres user cannot enter.
    workdir = tempfile.mkdtemp(prefix="mlops-bot-pg-")
    try:
        output = _run("start", workdir, str(free_port()), timeout=START_TIMEOUT)
    except PostgresUnavailable:
        with suppress(PostgresUnavailable):  # the start failure is the one worth reporting
            _stop(workdir)
        raise
    try:
        yield output.splitlines()[-1]
    finally:
        _stop(workdir)
