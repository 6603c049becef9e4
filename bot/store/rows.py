"""Conversions between table rows and domain objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.domain.access import AuditEvent, Outcome
from bot.domain.cards import CardRef
from bot.domain.deploys import Freeze, Lock
from bot.store import schema


def lock_values(lock: Lock) -> dict[str, Any]:
    return {
        "model": lock.model,
        "env": lock.env,
        "holder": lock.holder,
        "reason": lock.reason,
        "since": lock.since,
        "expires_at": lock.expires_at,
    }


def to_lock(row: sa.Row[Any]) -> Lock:
    return Lock(
        model=row.model,
        env=row.env,
        holder=row.holder,
        reason=row.reason,
        since=row.since,
        expires_at=row.expires_at,
    )


def is_live(lock: Lock, now: datetime) -> bool:
    """A lock past its expiry counts as absent."""
    return lock.expires_at is None or lock.expires_at > now


def live_locks(now: datetime) -> sa.ColumnElement[bool]:
    expires_at = schema.locks.c.expires_at
    return sa.or_(expires_at.is_(None), expires_at > now)


def freeze_values(freeze: Freeze) -> dict[str, Any]:
    return {"id": 1, "holder": freeze.holder, "reason": freeze.reason, "since": freeze.since}


def to_freeze(row: sa.Row[Any]) -> Freeze:
    return Freeze(holder=row.holder, reason=row.reason, since=row.since)


def audit_values(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "model": event.model,
        "outcome": event.outcome.value,
        "correlation_id": event.correlation_id,
        "parameters": event.parameters,
        "detail": event.detail,
    }


def to_audit(row: sa.Row[Any]) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        model=row.model,
        outcome=Outcome(row.outcome),
        correlation_id=row.correlation_id,
        parameters=dict(row.parameters),
        detail=row.detail,
    )


def to_card(row: sa.Row[Any]) -> CardRef:
    return CardRef(key=row.key, channel=row.channel, ts=row.ts)
