"""Version 9: the Slack delivery that asked for a run (``runs.request``, unique when set).

A /train acked and recorded but cut short by a restart runs again from the interactions inbox;
the key (the command's ``trigger:<id>``) makes that second pass find the run the first one
recorded instead of starting another. Runs recorded before this version have none.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

DESCRIPTION = "run requests"


async def apply(conn: AsyncConnection) -> None:
    # as bot.store.migrations.add_column does (imported from there, this module would sit in
    # an import circle with it)
    column = sa.Column("request", sa.String(255), nullable=True)
    ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
    await conn.execute(sa.text(f"ALTER TABLE runs ADD COLUMN {ddl}"))
    await conn.execute(sa.text("CREATE UNIQUE INDEX uq_runs_request ON runs (request)"))
