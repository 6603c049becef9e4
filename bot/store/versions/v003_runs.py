"""Version 3: training runs (what produced a model: code, data, parameters, results)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import UTCDateTime, bigint_pk, json_type

DESCRIPTION = "runs"


def _tables() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "runs",
        md,
        sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False, index=True),
        sa.Column("requester", sa.String(255), nullable=False),
        sa.Column("ref", sa.String(255), nullable=False),
        sa.Column("sha", sa.String(64), nullable=True),
        sa.Column("dataset", sa.String(255), nullable=True),
        sa.Column("gpus", sa.Integer, nullable=False),
        sa.Column("params", json_type(), nullable=False),
        sa.Column("project", sa.String(255), nullable=True),
        sa.Column("pipeline_id", sa.BigInteger, nullable=True),
        sa.Column("job_name", sa.String(255), nullable=True),
        sa.Column("namespace", sa.String(255), nullable=True),
        sa.Column("web_url", sa.Text, nullable=True),
        sa.Column("stage", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("metrics", json_type(), nullable=True),
        sa.Column("test_set", sa.String(255), nullable=True),
        sa.Column("verdict", json_type(), nullable=True),
        sa.Column("image", sa.Text, nullable=True),
        sa.Index("ix_runs_model_id", "model", "id"),
        sa.Index("ix_runs_pipeline", "project", "pipeline_id"),
    )
    return md


async def apply(conn: AsyncConnection) -> None:
    await conn.run_sync(_tables().create_all)
