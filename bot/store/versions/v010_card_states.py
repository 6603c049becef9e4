"""Version 10: each card's desired state, the outbox the Slack reconciler drains.

The table is declared here again, frozen as of version 10 (see v001_initial).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import UTCDateTime

DESCRIPTION = "card_states"


def _tables() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "card_states",
        md,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("channel", sa.String(255), nullable=False),
        sa.Column("parent", sa.String(255), nullable=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("blocks", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("synced", sa.Integer, nullable=False),
        sa.Column("dirty", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claims", sa.Integer, nullable=False),
        sa.Column("retry_at", UTCDateTime, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Index("ix_card_states_dirty_retry_at", "dirty", "retry_at"),
    )
    return md


async def apply(conn: AsyncConnection) -> None:
    await conn.run_sync(_tables().create_all)
