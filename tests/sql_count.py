"""Counting the SQL a piece of code runs: statements and the rows they return.

A listener on the engine's ``before_cursor_execute``/``after_cursor_execute`` records every
statement executed while ``counting()`` is active in the current task (a context variable, so
the bot's background loops running meanwhile are not counted).
"""

from __future__ import annotations

import contextvars
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

_CURRENT: contextvars.ContextVar[SqlCount | None] = contextvars.ContextVar("sql", default=None)


@dataclass
class Statement:
    sql: str
    parameters: Any
    rows: int = 0


@dataclass
class SqlCount:
    statements: list[Statement] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.statements)

    def full_scans(self, database: str, tables: tuple[str, ...]) -> list[str]:
        """Plan lines of SELECTs that read a whole table (``SCAN <table>`` without an index)."""
        found = []
        with sqlite3.connect(database) as conn:
            for s in self.statements:
                if not s.sql.lstrip().upper().startswith("SELECT"):
                    continue
                for row in conn.execute(f"EXPLAIN QUERY PLAN {s.sql}", s.parameters or ()):
                    detail = str(row[-1])
                    if any(detail == f"SCAN {t}" for t in tables):
                        found.append(f"{detail}: {s.sql}")
        return found


def install(engine: AsyncEngine) -> None:
    """Listen on ``engine`` (once per engine)."""
    sync = engine.sync_engine
    if event.contains(sync, "before_cursor_execute", _before):
        return
    event.listen(sync, "before_cursor_execute", _before)
    event.listen(sync, "after_cursor_execute", _after)


@contextmanager
def counting() -> Iterator[SqlCount]:
    found = SqlCount()
    token = _CURRENT.set(found)
    try:
        yield found
    finally:
        _CURRENT.reset(token)


def _before(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
    found = _CURRENT.get()
    if found is not None:
        found.statements.append(Statement(statement, parameters))


def _after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
    found = _CURRENT.get()
    if found is None or not found.statements or cursor.description is None:
        return
    # The async adapters fetch a (non-streaming) result at execute time into ``_rows``.
    buffered = getattr(cursor, "_rows", None)
    if buffered is None:
        raise AssertionError("cannot count rows: this DBAPI adapter buffers no rows")
    found.statements[-1].rows = len(buffered)
