"""`mlops-bot inbox [--failed]` and `mlops-bot inbox retry KEY`: see and replay deliveries."""

from __future__ import annotations

from bot.config.settings import Settings
from bot.errors import NotFound
from bot.store.inbox import InboxRow
from bot.store.inbox_sql import Status


def line(row: InboxRow) -> str:
    error = f"  {row.error}" if row.error else ""
    return (
        f"{row.received_at.isoformat(timespec='seconds')}  {row.status:<9} {row.kind:<14} "
        f"{row.project or '-':<24} tries={row.attempts} key={row.key}{error}"
    )


async def print_inbox(settings: Settings, *, failed: bool, limit: int = 100) -> int:
    """The newest webhook deliveries (only the failed ones with ``failed``)."""
    from bot.store import Store

    store = Store.from_url(settings.store_url, timeout=settings.store.timeout_seconds)
    try:
        await store.ensure_current()
        rows = await store.inbox.rows(status=Status.FAILED if failed else None, limit=limit)
    finally:
        await store.close()
    for row in rows:
        print(line(row))
    if not rows:
        print("no failed deliveries" if failed else "the inbox is empty")
    return 0


async def retry_delivery(settings: Settings, key: str) -> int:
    """Put a failed delivery back in line; a running bot picks it up within its next round."""
    from bot.store import Store

    store = Store.from_url(settings.store_url, timeout=settings.store.timeout_seconds)
    try:
        await store.ensure_current()
        if not await store.inbox.retry(key):
            raise NotFound(
                f"no failed delivery with key {key!r}: `mlops-bot inbox --failed` lists them"
            )
    finally:
        await store.close()
    print(f"delivery {key} is pending again; the bot will process it")
    return 0
