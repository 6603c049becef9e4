"""Version 1: deliveries, audit log, locks, freeze and cards.

Tables are declared here again, frozen as of version 1, so that later changes to
``bot.store.schema`` never alter what this migration creates.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import UTCDateTime, bigint_pk, json_type

DESCRIPTION = "deliveries, audit_events, locks, freeze, cards"


def _tables() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "schema_version",
        md,
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("applied_at", UTCDateTime, nullable=False),
    )
    sa.Table(
        "deliveries",
        md,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("claimed_at", UTCDateTime, nullable=False, index=True),
    )
    sa.Table(
        "audit_events",
        md,
        sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False, index=True),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(255), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("correlation_id", sa.String(255), nullable=False),
        sa.Column("parameters", json_type(), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Index("ix_audit_events_model_at", "model", "at"),
    )
    sa.Table(
        "locks",
        md,
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("env", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("since", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=True),
    )
    sa.Table(
        "freeze",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("since", UTCDateTime, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_freeze_single_row"),
    )
    sa.Table(
        "cards",
        md,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(64), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    return md


async def apply(conn: AsyncConnection) -> None:
    await conn.run_sync(_tables().create_all)
