"""Version 13: model monitoring: each run's reference profile, the last check per model and
environment, and incidents (one open per model, environment and kind).

The tables are declared here again, frozen as of version 13 (see v001_initial).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import UTCDateTime, bigint_pk, json_type

DESCRIPTION = "monitoring"


def _tables() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "run_references",
        md,
        sa.Column("run_id", sa.BigInteger, primary_key=True),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("profile", json_type(), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("stored_at", UTCDateTime, nullable=False),
    )
    sa.Table(
        "monitor_checks",
        md,
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("env", sa.String(64), primary_key=True),
        sa.Column("checked_at", UTCDateTime, nullable=False),
        sa.Column("deploy_id", sa.BigInteger, nullable=True),
        sa.Column("run_id", sa.BigInteger, nullable=True),
        sa.Column("result", json_type(), nullable=False),
    )
    sa.Table(
        "monitor_incidents",
        md,
        sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(128), nullable=False),
        sa.Column("open_key", sa.String(512), nullable=True, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("resolved_at", UTCDateTime, nullable=True),
        sa.Column("deploy_id", sa.BigInteger, nullable=True),
        sa.Column("first", sa.Text, nullable=False),
        sa.Column("latest", sa.Text, nullable=False),
        sa.Column("checks", sa.Integer, nullable=False),
        sa.Column("acknowledged_by", sa.String(255), nullable=True),
        sa.Column("snoozed_until", UTCDateTime, nullable=True),
        sa.Index("ix_monitor_incidents_model_env_id", "model", "env", "id"),
    )
    return md


async def apply(conn: AsyncConnection) -> None:
    await conn.run_sync(_tables().create_all)
