"""Version 14: who runs each deploy (``deployments.runner``: a replica id) and until when its
lease on it lasts (``deployments.runner_until``).

The replica running a deploy renews the lease while the deploy's task runs; the leader
re-attaches running or queued deploys whose lease has lapsed (their replica died), and never
one whose lease is live. A stopping replica clears its leases, so the next leader takes its
deploys at once. Deploys recorded before this version have none (lapsed).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import UTCDateTime

DESCRIPTION = "deploy runner leases"


async def apply(conn: AsyncConnection) -> None:
    # as bot.store.migrations.add_column does (imported from there, this module would sit in
    # an import circle with it)
    for column in (
        sa.Column("runner", sa.String(255), nullable=True),
        sa.Column("runner_until", UTCDateTime, nullable=True),
    ):
        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
        await conn.execute(sa.text(f"ALTER TABLE deployments ADD COLUMN {ddl}"))
