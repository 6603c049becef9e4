"""Version 11: the Slack delivery that asked for a deploy (``deployments.request``, unique when
set), whether it was answered (``deployments.replied``), and which taking of a running deploy
writes it (``deployments.attempt``).

A /deploy (or rollback, or a click on "Deploy to stg") acked and recorded but cut short by a
restart runs again from the interactions inbox; the key (the delivery's ``trigger:<id>``) makes
that second pass find the deploy the first one recorded instead of opening another. Deploys
recorded before this version have none. ``replied`` turns true just before the command's reply
is sent, so that the second pass does not answer again what the first one answered.

``attempt`` grows by one each time a bot takes the deploy (starts it, or resumes it after a
restart); a bot's writes to a running deploy carry the attempt it took, so a stale writer (a
stopping bot's task) cannot overwrite what the bot that resumed it recorded.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

DESCRIPTION = "deploy requests and attempts"


async def apply(conn: AsyncConnection) -> None:
    # as bot.store.migrations.add_column does (imported from there, this module would sit in
    # an import circle with it)
    for column in (
        sa.Column("request", sa.String(255), nullable=True),
        sa.Column("replied", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    ):
        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
        await conn.execute(sa.text(f"ALTER TABLE deployments ADD COLUMN {ddl}"))
    await conn.execute(
        sa.text("CREATE UNIQUE INDEX uq_deployments_request ON deployments (request)")
    )
