"""Version 7: partial indexes that keep /train list, the GPU quota and the poller bounded.

Each index holds only the active (or only the finished) runs, so a listing, a count or a GPU sum
reads those entries and nothing of the rest of the table. The conditions are literals, as the
queries in bot/store/runs.py write them (SQLite uses a partial index only for a literal match).
The plain index on ``state`` goes: the partial ones cover every query that used it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

DESCRIPTION = "listing indexes"

ACTIVE = "state IN ('queued', 'running')"
FINISHED = "state IN ('succeeded', 'failed', 'canceled')"
INDEXES = (
    ("ix_runs_active_id", "id", ACTIVE),
    ("ix_runs_active_model", "model, id, gpus", ACTIVE),
    ("ix_runs_active_requester", "requester, id, gpus", ACTIVE),
    ("ix_runs_finished_id", "id", FINISHED),
    ("ix_runs_finished_model", "model, id", FINISHED),
)


async def apply(conn: AsyncConnection) -> None:
    # The plain index on state is superseded: left in place, SQLite's planner takes it for an
    # ordered listing and sorts every active run to find the first few.
    await conn.execute(sa.text("DROP INDEX IF EXISTS ix_runs_state"))
    for name, columns, where in INDEXES:
        await conn.execute(sa.text(f"CREATE INDEX {name} ON runs ({columns}) WHERE {where}"))
