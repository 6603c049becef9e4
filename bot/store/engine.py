"""Engine construction: URL normalisation, driver timeouts and SQLite connection settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.errors import ConfigError
from bot.store.loop_sqlite import DRIVER as SQLITE

POSTGRES = "postgresql+asyncpg"
_ASYNC_DRIVERS = {
    "sqlite": SQLITE,
    "sqlite+aiosqlite": SQLITE,
    "sqlite+pysqlite": SQLITE,
    SQLITE: SQLITE,
    "postgres": POSTGRES,
    "postgresql": POSTGRES,
    "postgresql+asyncpg": POSTGRES,
    "postgresql+psycopg": POSTGRES,
    "postgresql+psycopg2": POSTGRES,
}
# Connections from an engine carrying this option open their transactions with BEGIN IMMEDIATE,
# so SQLite takes the write lock up front (waiting on busy_timeout) instead of failing later.
IMMEDIATE = "sqlite_begin_immediate"


def normalize_url(url: str) -> URL:
    """Parse ``url`` and swap its driver for the async one this store runs on."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError([f"store URL is not a database URL: {url!r}"]) from None
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        shown = parsed.render_as_string(hide_password=True)
        raise ConfigError([f"store URL {shown!r}: only sqlite and postgresql are supported"])
    if driver == SQLITE and parsed.database in (None, "", ":memory:"):
        raise ConfigError(["store URL must name an SQLite file, e.g. sqlite:///var/lib/bot.db"])
    return parsed.set(drivername=driver)


def build_engine(url: URL, *, timeout: float) -> AsyncEngine:
    """Create the engine without connecting; SQLite connections are configured on connect."""
    if url.drivername == SQLITE:
        return _sqlite_engine(url, timeout=timeout)
    connect_args: dict[str, Any] = {"timeout": timeout, "command_timeout": timeout}
    return create_async_engine(
        url, connect_args=connect_args, pool_timeout=timeout, pool_pre_ping=True
    )


def _sqlite_engine(url: URL, *, timeout: float) -> AsyncEngine:
    # SQLite gives up waiting for a writer a little before the asyncio timeout would cancel it.
    engine = create_async_engine(url, connect_args={"timeout": timeout * 0.9}, pool_timeout=timeout)
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "do_connect")
    def make_parent_dir(dialect: Any, record: Any, cargs: Any, cparams: Any) -> None:
        Path(str(url.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)

    _configure(sync_engine)
    return engine


def _configure(engine: Engine) -> None:
    """Every SQLite connection of ``engine``: WAL, foreign keys on, and transactions begun by
    SQLAlchemy (``BEGIN IMMEDIATE`` under the ``IMMEDIATE`` option)."""

    @event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, record: Any) -> None:
        # Take transaction control away from the sqlite3 module; SQLAlchemy emits BEGIN below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # switching a new file to WAL needs the lock another process may hold at that moment:
        # the driver waits for it off the loop
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
