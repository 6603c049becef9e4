"""Version 15: monitoring history: every check of a model environment with its figures (pruned
to a bounded age), and when each environment's daily digest was last sent.

The tables are declared here again, frozen as of version 15 (see v001_initial).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import UTCDateTime, bigint_pk, json_type

DESCRIPTION = "monitoring history"


def _tables() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "monitor_history",
        md,
        sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("checked_at", UTCDateTime, nullable=False),
        sa.Column("deploy_id", sa.BigInteger, nullable=True),
        sa.Column("run_id", sa.BigInteger, nullable=True),
        sa.Column("result", json_type(), nullable=False),
        sa.Index("ix_monitor_history_model_env_checked_at", "model", "env", "checked_at"),
    )
    sa.Table(
        "monitor_digests",
        md,
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("env", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),  # YYYY-MM-DD (UTC) of the last sent
        sa.Column("sent_at", UTCDateTime, nullable=False),
        sa.Column("file_id", sa.String(64), nullable=True),
    )
    return md


async def apply(conn: AsyncConnection) -> None:
    await conn.run_sync(_tables().create_all)
