"""Version 4: deployments and the approval votes on them."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import UTCDateTime, bigint_pk

DESCRIPTION = "deployments, approval_votes"


def _tables() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "deployments",
        md,
        sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(32), nullable=False, index=True),
        sa.Column("requester", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("image_tag", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(100), nullable=False),
        sa.Column("run_id", sa.BigInteger, nullable=True),
        sa.Column("sha", sa.String(64), nullable=True),
        sa.Column("ref", sa.String(255), nullable=True),
        sa.Column("force_reason", sa.Text, nullable=True),
        sa.Column("revision", sa.Integer, nullable=True),
        sa.Column("previous_revision", sa.Integer, nullable=True),
        sa.Column("target_deploy", sa.BigInteger, nullable=True),
        sa.Column("expires_at", UTCDateTime, nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("diff", sa.Text, nullable=True),
        sa.Index("ix_deployments_model_env_id", "model", "env", "id"),
    )
    sa.Table(
        "approval_votes",
        md,
        sa.Column("deploy_id", sa.BigInteger, primary_key=True),
        sa.Column("user", sa.String(255), primary_key=True),
        sa.Column("approve", sa.Boolean, nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    return md


async def apply(conn: AsyncConnection) -> None:
    await conn.run_sync(_tables().create_all)
