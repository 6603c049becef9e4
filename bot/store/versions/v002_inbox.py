"""Version 2: the webhook inbox and the state of each CI card.

Tables are declared here again, frozen as of version 2 (see v001_initial).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import UTCDateTime, bigint_pk, json_type

DESCRIPTION = "inbox, ci_state"


def _tables() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "inbox",
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
        sa.UniqueConstraint("key", name="uq_inbox_key"),
        sa.Index("ix_inbox_status_id", "status", "id"),
        sa.Index("ix_inbox_done_at", "done_at"),
    )
    sa.Table(
        "ci_state",
        md,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("state", json_type(), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False, index=True),
    )
    return md


async def apply(conn: AsyncConnection) -> None:
    await conn.run_sync(_tables().create_all)
