"""What the harness reads back: the store's rows (read-only, plain SQL so that it follows the
schema loosely) and the ecspresso runs the logging wrapper wrote down."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store.engine import build_engine, normalize_url

RUN_FINAL = {"succeeded", "failed", "canceled"}
DEPLOY_FINAL = {"succeeded", "failed", "rejected", "expired"}


@dataclass(frozen=True)
class StoreView:
    runs: dict[int, str] = field(default_factory=dict)  # id -> state
    unjudged: list[int] = field(default_factory=list)  # succeeded runs without a gate verdict
    gate_failures: dict[int, str] = field(default_factory=dict)  # run id -> the verdict's reasons
    deploys: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (env, state)
    locks: list[tuple[str, str, str]] = field(default_factory=list)  # (model, env, holder)
    cards: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (channel, ts)
    pending_interactions: int = 0
    pending_deliveries: int = 0
    dirty_cards: int = 0

    def unsettled(self) -> list[str]:
        """What is still moving: anything here means the trial has not settled yet."""
        moving = [f"run {i} {s}" for i, s in self.runs.items() if s not in RUN_FINAL]
        moving += [f"deploy {i} {s}" for i, (_, s) in self.deploys.items() if s not in DEPLOY_FINAL]
        moving += [f"{self.pending_interactions} interaction(s) pending"] * bool(
            self.pending_interactions
        )
        moving += [f"{self.pending_deliveries} webhook(s) pending"] * bool(self.pending_deliveries)
        moving += [f"{self.dirty_cards} card(s) not yet shown"] * bool(self.dirty_cards)
        return moving

    def deploy_of(self, env: str) -> tuple[int, str] | None:
        """The newest deploy to ``env``: (id, state)."""
        found = [(i, s) for i, (e, s) in sorted(self.deploys.items()) if e == env]
        return found[-1] if found else None


class StoreReader:
    """Read-only queries on the trial's store, from the test process."""

    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = build_engine(normalize_url(url), timeout=10.0)

    async def close(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def view(self) -> StoreView:
        async with self._conn() as conn:
            runs = await _rows(conn, "SELECT id, state FROM runs")
            succeeded = await _rows(conn, "SELECT id, verdict FROM runs WHERE state = 'succeeded'")
            deploys = await _rows(conn, "SELECT id, env, state FROM deployments")
            locks = await _rows(conn, "SELECT model, env, holder FROM locks")
            cards = await _rows(conn, "SELECT key, channel, ts FROM cards")
            interactions = await _count(conn, "interactions", "status = 'pending'")
            deliveries = await _count(conn, "inbox", "status = 'pending'")
            dirty = await _count(conn, "card_states", "dirty")
        verdicts = _verdicts(succeeded)
        return StoreView(
            runs={int(r[0]): str(r[1]) for r in runs},
            unjudged=[run_id for run_id, verdict in verdicts if verdict is None],
            gate_failures=_gate_failures(verdicts),
            deploys={int(r[0]): (str(r[1]), str(r[2])) for r in deploys},
            locks=[(str(r[0]), str(r[1]), str(r[2])) for r in locks],
            cards={str(r[0]): (str(r[1]), str(r[2])) for r in cards},
            pending_interactions=interactions,
            pending_deliveries=deliveries,
            dirty_cards=dirty,
        )


def _verdicts(rows: list[Any]) -> list[tuple[int, dict[str, Any] | None]]:
    """Each succeeded run's verdict, None while it has none (SQL NULL, or the JSON text
    ``null`` older stores hold); JSON text on SQLite, JSONB as text from asyncpg."""
    return [(int(run_id), json.loads(raw) if isinstance(raw, str) else raw) for run_id, raw in rows]


def _gate_failures(verdicts: list[tuple[int, dict[str, Any] | None]]) -> dict[int, str]:
    """Runs whose verdict did not pass, with its reasons."""
    return {
        run_id: "; ".join(verdict.get("reasons") or ["no reason given"])
        for run_id, verdict in verdicts
        if verdict is not None and not verdict.get("passed")
    }


async def _rows(conn: AsyncConnection, query: str) -> list[Any]:
    """The rows, or none when the table is not there (yet: a store the bot never migrated)."""
    try:
        return list(await conn.execute(sa.text(query)))
    except SQLAlchemyError:
        await conn.rollback()
        return []


async def _count(conn: AsyncConnection, table: str, where: str) -> int:
    rows = await _rows(conn, f"SELECT count(*) FROM {table} WHERE {where}")  # noqa: S608 - ours
    return int(rows[0][0]) if rows else 0


@dataclass(frozen=True)
class EcspressoRun:
    pid: int
    deploy: str
    command: str
    exit_code: int | None  # None: no end line (killed, or still running)


def ecspresso_runs(log: Path) -> list[EcspressoRun]:
    """The wrapper's lines ``start PID DEPLOY CMD`` and ``end PID DEPLOY CMD CODE``, paired."""
    runs: dict[int, EcspressoRun] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if parts[0] == "start":
            runs[pid] = EcspressoRun(pid, parts[2], parts[3], None)
        elif parts[0] == "end" and pid in runs and len(parts) >= 5:
            runs[pid] = EcspressoRun(pid, parts[2], parts[3], int(parts[4]))
    return list(runs.values())
