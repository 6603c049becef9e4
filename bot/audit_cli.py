"""`mlops-bot audit`: the audit log as lines or JSON."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime, timedelta

from bot.clock import utcnow
from bot.config.settings import Settings
from bot.domain.access import AuditEvent
from bot.errors import UserInputError

AGE = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """An ISO time, or an age like 30m / 12h / 7d counted back from now."""
    if not text:
        return None
    match = AGE.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), UNITS[match.group(2)]
        return (now or utcnow()) - timedelta(**{unit: amount})
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserInputError(
            f"--since {text!r}: use an ISO time (2026-11-27T10:00Z) or an age like 30m, 12h, 7d"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=utcnow().tzinfo)


def line(event: AuditEvent) -> str:
    detail = f"  {event.detail}" if event.detail else ""
    return (
        f"{event.at.isoformat(timespec='seconds')}  {event.actor:<10} {event.action:<24} "
        f"{event.target or '-':<16} {event.outcome:<8} ref={event.correlation_id}{detail}"
    )


def json_line(event: AuditEvent) -> str:
    data = asdict(event)
    data["at"] = event.at.isoformat()
    return json.dumps(data, default=str, sort_keys=True)


async def print_audit(
    settings: Settings, *, model: str | None, since: str | None, as_json: bool
) -> int:
    from bot.store import Store

    start = parse_since(since)
    store = Store.from_url(settings.store_url, timeout=settings.store.timeout_seconds)
    try:
        await store.ensure_current()
        events = await store.audit_events(model=model, since=start)
    finally:
        await store.close()
    render = json_line if as_json else line
    for event in events:
        print(render(event))
    return 0
