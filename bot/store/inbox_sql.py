"""The statements an inbox runs for every delivery, built once per table.

A statement built for each call cost more than running it: the clauses, then the cache key
SQLAlchemy derives from them to find the compiled form. Built once, with bound parameters,
each call only binds its values (expanding parameters take lists of any length).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa


class Status(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


def _due(table: sa.Table) -> sa.ColumnElement[bool]:
    """Pending, not waiting for a retry, and claimed by nobody (or by a lapsed claim), or
    one of ``mine``: rows this replica stored and holds the first refusal of. Binds ``at``
    (now) and ``mine`` (a list, maybe empty)."""
    c = table.c
    at = sa.bindparam("at", type_=c.claimed_until.type)
    mine = c.id.in_(sa.bindparam("mine", expanding=True))
    return sa.and_(
        c.status == Status.PENDING,
        sa.or_(c.retry_at.is_(None), c.retry_at <= at),
        sa.or_(c.claimed_until.is_(None), c.claimed_until <= at, mine),
    )


@dataclass(frozen=True)
class InboxStatements:
    """A claim's statements bind ``at``, ``mine`` and ``skip`` (lists, maybe empty) and
    ``limit``; the updates of claimed rows bind ``ids`` (a list)."""

    oldest: sa.Select[Any]  # the oldest due rows, whole
    pick: sa.Select[Any]  # their ids, locked (skipping rows locked by another claimer)
    take: sa.Update  # claims ``ids`` that are still due until ``until``; returns the rows
    renew: sa.Update  # claims the pending ``ids`` until ``until``
    finish: sa.Update  # ends the pending ``ids``: ``status``, ``done_at``, ``error``
    fail: sa.Update  # counts a failed attempt of ``ids``: ``finish``'s and ``retry_at``

    @classmethod
    def of(cls, table: sa.Table) -> InboxStatements:
        c = table.c
        due = _due(table)
        limit = sa.bindparam("limit", type_=sa.Integer)
        unskipped = c.id.not_in(sa.bindparam("skip", expanding=True))
        until = sa.bindparam("until", type_=c.claimed_until.type)
        ids = c.id.in_(sa.bindparam("ids", expanding=True))
        pending = table.update().where(ids, c.status == Status.PENDING)

        ended = {
            "status": sa.bindparam("status", type_=c.status.type),
            "done_at": sa.bindparam("done_at", type_=c.done_at.type),
            "error": sa.bindparam("error", type_=c.error.type),
            "claimed_until": None,
        }

        def oldest_due(query: sa.Select[Any]) -> sa.Select[Any]:
            return query.where(due, unskipped).order_by(c.id).limit(limit)

        return cls(
            oldest=oldest_due(sa.select(table)),
            pick=oldest_due(sa.select(c.id)).with_for_update(skip_locked=True),
            take=table.update().where(ids, due).values(claimed_until=until).returning(*c),
            renew=pending.values(claimed_until=until),
            finish=pending.values(ended),
            fail=pending.values(
                ended
                | {
                    "attempts": c.attempts + 1,
                    "retry_at": sa.bindparam("retry_at", type_=c.retry_at.type),
                }
            ),
        )
