"""Version 6: Slack interactions, recorded before the ack (same shape as the webhook inbox).

The table is declared here again, frozen as of version 6 (see v001_initial).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import UTCDateTime, bigint_pk

DESCRIPTION = "interactions"


def _tables() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "interactions",
        md,
        sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("project", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("retry_at", UTCDateTime, nullable=True),
        sa.Column("done_at", UTCDateTime, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.UniqueConstraint("key", name="uq_interactions_key"),
        sa.Index("ix_interactions_status_id", "status", "id"),
        sa.Index("ix_interactions_done_at", "done_at"),
    )
    return md


async def apply(conn: AsyncConnection) -> None:
    await conn.run_sync(_tables().create_all)
