"""Version 12: the leader lease (name, holder, term, expiry) and claim leases on both inboxes.

The table is declared here again, frozen as of version 12 (see v001_initial).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import UTCDateTime

DESCRIPTION = "leases"


def _tables() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "leases",
        md,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("term", sa.BigInteger, nullable=False),
        sa.Column("acquired_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    return md


async def apply(conn: AsyncConnection) -> None:
    await conn.run_sync(_tables().create_all)
    # as bot.store.migrations.add_column does (imported from there, this module would sit in
    # an import circle with it)
    ddl = sa.schema.CreateColumn(sa.Column("claimed_until", UTCDateTime, nullable=True))
    compiled = ddl.compile(dialect=conn.dialect)
    for table in ("inbox", "interactions"):
        await conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {compiled}"))
