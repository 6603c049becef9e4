"""Version 8: where a running deploy is, so a restart resumes it from what ECS says.

``step`` (starting, ecspresso, verifying, rolling back), ``ecspresso_runs`` (ecspresso deploys
started for it: one, plus at most one re-run after an interruption), ``ecs_before`` (JSON: what
ECS ran before, to tell "ECS changed" from "nothing happened"), and the process group of a
running ecspresso (``ecspresso_pgid`` and ``ecspresso_fingerprint``, boot id and start time of
the group's leader, so that a recycled pid is never taken for it). Deploys running when this is
applied keep ``step`` NULL and are followed on ECS as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

DESCRIPTION = "deploy progress"


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("step", sa.String(16), nullable=True),
        sa.Column("ecspresso_runs", sa.Integer, nullable=False, server_default="0"),
        sa.Column("ecs_before", sa.Text, nullable=True),
        sa.Column("ecspresso_pgid", sa.Integer, nullable=True),
        sa.Column("ecspresso_fingerprint", sa.String(128), nullable=True),
    ]


async def apply(conn: AsyncConnection) -> None:
    # as bot.store.migrations.add_column does (imported from there, this module would sit in
    # an import circle with it)
    table = conn.dialect.identifier_preparer.quote("deployments")
    for column in _columns():
        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
        await conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {ddl}"))
