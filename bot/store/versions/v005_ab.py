"""Version 5: A/B experiments, their history of changes, and the votes on weight changes."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import UTCDateTime, bigint_pk, json_type

# Frozen here: later changes to the active states need a migration of their own.
ACTIVE_STATES = sa.text("state IN ('deploying B', 'running', 'promoting')")

DESCRIPTION = "ab_experiments, ab_changes, ab_votes"


def _tables() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "ab_experiments",
        md,
        sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("b_env", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False, index=True),
        sa.Column("requester", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("weight", sa.Integer, nullable=False),
        sa.Column("run_b", sa.BigInteger, nullable=True),
        sa.Column("image_b", sa.Text, nullable=False),
        sa.Column("digest_b", sa.String(100), nullable=False),
        sa.Column("run_a", sa.BigInteger, nullable=True),
        sa.Column("image_a", sa.Text, nullable=False),
        sa.Column("deploy_id", sa.BigInteger, nullable=True),
        sa.Column("weight_a", sa.Integer, nullable=True),
        sa.Column("weight_b", sa.Integer, nullable=True),
        sa.Column("breaches", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("readings", json_type(), nullable=False),
        sa.Column("checked_at", UTCDateTime, nullable=True),
        sa.Column("guard_error", sa.Text, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Index("ix_ab_experiments_model_env_id", "model", "env", "id"),
        sa.Index(
            "uq_ab_experiments_active",
            "model",
            "env",
            unique=True,
            sqlite_where=ACTIVE_STATES,
            postgresql_where=ACTIVE_STATES,
        ),
    )
    sa.Table(
        "ab_changes",
        md,
        sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.BigInteger, nullable=False, index=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False, index=True),
        sa.Column("weight_from", sa.Integer, nullable=True),
        sa.Column("weight_to", sa.Integer, nullable=True),
        sa.Column("expires_at", UTCDateTime, nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
    )
    sa.Table(
        "ab_votes",
        md,
        sa.Column("change_id", sa.BigInteger, primary_key=True),
        sa.Column("user", sa.String(255), primary_key=True),
        sa.Column("approve", sa.Boolean, nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    return md


async def apply(conn: AsyncConnection) -> None:
    await conn.run_sync(_tables().create_all)
