"""Versioned schema migrations: an ordered list, applied one transaction per version.

To change the schema: add ``versions/vNNN_<what>.py`` with an ``apply(conn)`` coroutine, append
it to ``MIGRATIONS`` and update ``schema.py`` to the new shape. Never edit a shipped version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store import schema
from bot.store.versions import (
    v001_initial,
    v002_inbox,
    v003_runs,
    v004_deployments,
    v005_ab,
    v006_interactions,
    v007_listing_indexes,
    v008_deploy_progress,
    v009_run_requests,
    v010_card_states,
    v011_deploy_requests,
    v012_leases,
    v013_monitoring,
    v014_deploy_runners,
    v015_monitor_history,
)

# Key of the PostgreSQL advisory lock that serialises `migrate` across processes ("mlopsbot").
_ADVISORY_LOCK_KEY = 0x6D6C6F7073626F74


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[AsyncConnection], Awaitable[None]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, v001_initial.DESCRIPTION, v001_initial.apply),
    Migration(2, v002_inbox.DESCRIPTION, v002_inbox.apply),
    Migration(3, v003_runs.DESCRIPTION, v003_runs.apply),
    Migration(4, v004_deployments.DESCRIPTION, v004_deployments.apply),
    Migration(5, v005_ab.DESCRIPTION, v005_ab.apply),
    Migration(6, v006_interactions.DESCRIPTION, v006_interactions.apply),
    Migration(7, v007_listing_indexes.DESCRIPTION, v007_listing_indexes.apply),
    Migration(8, v008_deploy_progress.DESCRIPTION, v008_deploy_progress.apply),
    Migration(9, v009_run_requests.DESCRIPTION, v009_run_requests.apply),
    Migration(10, v010_card_states.DESCRIPTION, v010_card_states.apply),
    Migration(11, v011_deploy_requests.DESCRIPTION, v011_deploy_requests.apply),
    Migration(12, v012_leases.DESCRIPTION, v012_leases.apply),
    Migration(13, v013_monitoring.DESCRIPTION, v013_monitoring.apply),
    Migration(14, v014_deploy_runners.DESCRIPTION, v014_deploy_runners.apply),
    Migration(15, v015_monitor_history.DESCRIPTION, v015_monitor_history.apply),
)
LATEST = MIGRATIONS[-1].version


async def current_version(conn: AsyncConnection) -> int:
    """The highest applied version; 0 for an empty database."""
    has_table = await conn.run_sync(lambda c: sa.inspect(c).has_table("schema_version"))
    if not has_table:
        return 0
    version = await conn.scalar(sa.select(sa.func.max(schema.schema_version.c.version)))
    return int(version or 0)


async def serialise_migrations(conn: AsyncConnection) -> None:
    """Hold off other migrating processes until this transaction ends.

    SQLite needs nothing here: migration transactions there begin IMMEDIATE, which already
    takes the database's single write lock.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY)))


def next_migration(version: int) -> Migration | None:
    return next((m for m in MIGRATIONS if m.version > version), None)


async def apply_migration(conn: AsyncConnection, migration: Migration) -> None:
    await migration.apply(conn)
    await conn.execute(
        schema.schema_version.insert().values(
            version=migration.version,
            description=migration.description,
            applied_at=datetime.now(UTC),
        )
    )


async def add_column(conn: AsyncConnection, table: str, column: sa.Column[Any]) -> None:
    """ALTER TABLE ... ADD COLUMN, with the column's type compiled for this database.

    For later migrations; give the column ``nullable=True`` or a ``server_default``.
    """
    preparer = conn.dialect.identifier_preparer
    ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
    await conn.execute(sa.text(f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {ddl}"))
